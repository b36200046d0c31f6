package pkarrclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// These tests run the Client over HTTP against the project's own relay
// server, pkarrrelay, on 127.0.0.1. What a test needs beyond the relay API
// (counting requests, holding or slowing GETs) is a middleware around the
// real handler; packets are injected and inspected through the relay's
// store.

// testEpoch is a fixed packet timestamp (2025-01-01T00:00:00Z). The relays
// run on a fake clock stopped at that instant, so their future-timestamp
// check does not depend on the wall clock either.
const testEpoch = integrationEpoch

// relayServerOptions adjusts serveRelay. The zero value is a plain relay.
type relayServerOptions struct {
	capacity int             // packets the memory store holds; 0 means 100
	getDelay time.Duration   // GETs are answered this much later
	getGate  <-chan struct{} // if set, GETs wait until it is closed
}

// relayServer is a pkarrrelay.Handler on a memory store, served on
// 127.0.0.1 behind relayProbe.
type relayServer struct {
	URL   string // the relay's base URL, mounted at "/"
	store *pkarrrelay.MemoryStore
	srv   *httptest.Server
	probe *relayProbe
}

// relayProbe is the middleware in front of the real handler: it counts PUTs
// and GETs and holds GETs at the gate, then for the delay, before passing
// them on. A GET whose client leaves while held is dropped unanswered.
type relayProbe struct {
	next       http.Handler
	delay      time.Duration
	gate       <-chan struct{}
	puts, gets atomic.Int64
}

func (p *relayProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPut:
		p.puts.Add(1)
	case http.MethodGet:
		p.gets.Add(1)
		if p.gate != nil {
			select {
			case <-p.gate:
			case <-r.Context().Done():
				return
			}
		}
		if p.delay > 0 {
			timer := time.NewTimer(p.delay)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
		}
	}
	p.next.ServeHTTP(w, r)
}

// serveRelay starts a real relay with its rate limits disabled.
func serveRelay(t *testing.T, o relayServerOptions) *relayServer {
	t.Helper()
	if o.capacity == 0 {
		o.capacity = 100
	}
	store := pkarrrelay.NewMemoryStore(o.capacity)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithClock(clockwork.NewFakeClockAt(time.UnixMicro(int64(testEpoch)))),
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
	)
	if err != nil {
		t.Fatal(err)
	}
	probe := &relayProbe{next: h, delay: o.getDelay, gate: o.getGate}
	srv := httptest.NewServer(probe)
	t.Cleanup(srv.Close)
	return &relayServer{URL: srv.URL, store: store, srv: srv, probe: probe}
}

// put stores p in the relay directly, as if a client had published it.
func (s *relayServer) put(t *testing.T, p *pkarrclient.SignedPacket) pkarrrelay.PutOutcome {
	t.Helper()
	outcome, err := s.store.Put(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return outcome
}

// packet returns the packet the relay holds for key, or nil.
func (s *relayServer) packet(t *testing.T, key pkarrclient.PublicKey) *pkarrclient.SignedPacket {
	t.Helper()
	rec, err := s.store.Get(context.Background(), key)
	if errors.Is(err, pkarrrelay.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkarrclient.ParseRelayPayload(key, rec.Payload)
	if err != nil {
		t.Fatalf("the relay holds an invalid packet: %v", err)
	}
	return p
}

// newTestRelay returns a Relay for url using a loopback-only HTTP client and
// millisecond backoff; opts come last and may override either.
func newTestRelay(t testing.TB, url string, opts ...pkarrclient.RelayOption) *pkarrclient.Relay {
	t.Helper()
	base := []pkarrclient.RelayOption{
		pkarrclient.RelayHTTPClient(pkarrclient.LoopbackHTTPClient(t)),
		pkarrclient.RelayBackoff(time.Millisecond, 4*time.Millisecond),
	}
	r, err := pkarrclient.NewRelay(url, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// scriptedServer serves h on 127.0.0.1: a relay that misbehaves on purpose.
func scriptedServer(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newTestClient(t *testing.T, backends []pkarrclient.Backend, opts ...pkarrclient.ClientOption) *pkarrclient.Client {
	t.Helper()
	c, err := pkarrclient.NewClient(backends, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func txtOf(p *pkarrclient.SignedPacket) string {
	if p == nil {
		return "<nil>"
	}
	return strings.Join(p.TXT("_test"), ",")
}

// flakyBackend accepts every publish and fails every resolve as
// unavailable: a relay that is up and down.
type flakyBackend struct{}

func (flakyBackend) Name() string { return "flaky" }

func (flakyBackend) Publish(context.Context, *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	return pkarrclient.PublishReceipt{}, nil
}

func (flakyBackend) Resolve(context.Context, pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	return nil, &pkarrclient.BackendError{Backend: "flaky", Op: "resolve", Err: pkarrclient.ErrUnavailable}
}

func TestPublishOverRelays(t *testing.T) {
	sk := pkarrclient.NewTestSecretKey(t)
	v1 := pkarrclient.TXTPacket(t, sk, testEpoch, "v1", 300)
	v2 := pkarrclient.TXTPacket(t, sk, testEpoch+1, "v2", 300)
	good := serveRelay(t, relayServerOptions{})
	stale := serveRelay(t, relayServerOptions{})
	stale.put(t, v2) // already holds a newer packet: 409
	broken := scriptedServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	rGood := newTestRelay(t, good.URL)
	rStale := newTestRelay(t, stale.URL)
	rBroken := newTestRelay(t, broken.URL)
	c := newTestClient(t, []pkarrclient.Backend{rGood, rStale, rBroken})
	res, err := c.Publish(ctxFor(t), v1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || !errors.Is(res.Outcomes[1].Err, pkarrclient.ErrNotMostRecent) || !errors.Is(res.Outcomes[2].Err, pkarrclient.ErrUnavailable) {
		t.Fatalf("outcomes %+v", res.Outcomes)
	}
	if !good.packet(t, sk.PublicKey()).Equal(v1) {
		t.Fatal("the good relay does not hold the packet")
	}
	c2 := newTestClient(t, []pkarrclient.Backend{rGood, rStale, rBroken}, pkarrclient.WithSuccessPolicy(pkarrclient.Majority))
	_, err = c2.Publish(ctxFor(t), v1)
	var pe *pkarrclient.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, pkarrclient.ErrNotMostRecent) || !errors.Is(err, pkarrclient.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

// A relay answering junk at once, one answering a packet signed by another
// key at once, and an honest relay answering only after both bad answers
// are in.
func TestResolveJunkFastHonestSlow(t *testing.T) {
	sk := pkarrclient.NewTestSecretKey(t)
	p := pkarrclient.TXTPacket(t, sk, testEpoch, "honest", 300)
	junk := scriptedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("junk"), 50))
	})
	wrongKey := pkarrclient.TXTPacket(t, pkarrclient.NewTestSecretKey(t), testEpoch+1000, "evil", 300)
	evil := scriptedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(wrongKey.RelayPayload())
	})
	gate := make(chan struct{})
	honest := serveRelay(t, relayServerOptions{getGate: gate})
	honest.put(t, p)
	c := newTestClient(t, []pkarrclient.Backend{
		newTestRelay(t, junk.URL), newTestRelay(t, evil.URL), newTestRelay(t, honest.URL),
	})
	var outcomes []pkarrclient.Outcome
	got, err := c.Resolve(ctxFor(t), sk.PublicKey(), pkarrclient.ReportOutcomes(func(o pkarrclient.Outcome) {
		outcomes = append(outcomes, o)
		if len(outcomes) == 2 {
			close(gate)
		}
	}))
	if err != nil || !got.Equal(p) {
		t.Fatalf("got %v, %v", got, err)
	}
	if len(outcomes) != 3 || outcomes[2].Packet == nil || outcomes[2].Backend != c.Backends()[2].Name() {
		t.Fatalf("outcomes %+v, want the honest relay's last", outcomes)
	}
	for _, o := range outcomes[:2] {
		if !errors.Is(o.Err, pkarrclient.ErrInvalidResponse) || o.Packet != nil {
			t.Errorf("outcome %+v", o)
		}
	}
	if !errors.Is(outcomes[1].Err, pkarrclient.ErrBadSignature) && !errors.Is(outcomes[0].Err, pkarrclient.ErrBadSignature) {
		t.Errorf("the other key's packet was not rejected by its signature: %+v", outcomes)
	}
}

// A relay replaying an old, validly signed packet cannot roll the Client
// back past what it has cached, nor beat a relay holding the newer one in
// ResolveMostRecent.
func TestResolveRollbackProtection(t *testing.T) {
	sk := pkarrclient.NewTestSecretKey(t)
	v1 := pkarrclient.TXTPacket(t, sk, testEpoch, "old", 300)
	v2 := pkarrclient.TXTPacket(t, sk, testEpoch+1_000_000, "new", 300)
	// The replaying relay holds one packet, so another key's packet evicts
	// whatever it held for sk.
	oldRelay := serveRelay(t, relayServerOptions{capacity: 1})
	oldRelay.put(t, v1)
	// The replaying relay usually answers first.
	newRelay := serveRelay(t, relayServerOptions{getDelay: 50 * time.Millisecond})
	newRelay.put(t, v2)
	clock := clockwork.NewFakeClock()
	backends := []pkarrclient.Backend{
		newTestRelay(t, oldRelay.URL),
		newTestRelay(t, newRelay.URL),
	}
	ctx := ctxFor(t)
	gets := func() int64 { return oldRelay.probe.gets.Load() + newRelay.probe.gets.Load() }

	t.Run("ResolveMostRecent picks the newest", func(t *testing.T) {
		c := newTestClient(t, backends, pkarrclient.WithClock(clock))
		got, err := c.ResolveMostRecent(ctx, sk.PublicKey())
		if err != nil || !got.Equal(v2) {
			t.Fatalf("got %s, %v; want new", txtOf(got), err)
		}
		// The clock has not moved: Resolve answers from the cache, without
		// a GET, whatever the cache holds.
		before := gets()
		got, err = c.Resolve(ctx, sk.PublicKey())
		if err != nil || gets() != before {
			t.Fatalf("Resolve within the TTL: %v after %d GETs; want the cached packet", err, gets()-before)
		}
		if !got.Equal(v2) {
			t.Fatal("cache does not hold the newest packet")
		}
	})

	t.Run("Resolve with the newer packet cached", func(t *testing.T) {
		// Only the replaying relay is asked, so its old packet is the
		// network's answer.
		c := newTestClient(t, backends[:1], pkarrclient.WithClock(clock))
		// The Client publishes the new packet (and caches it); the relay
		// then loses it to eviction, and the old packet is replayed to it.
		if _, err := c.Publish(ctx, v2); err != nil {
			t.Fatal(err)
		}
		if got := oldRelay.packet(t, sk.PublicKey()); !got.Equal(v2) {
			t.Fatalf("the relay holds %s after the publish, want new", txtOf(got))
		}
		oldRelay.put(t, pkarrclient.TXTPacket(t, pkarrclient.NewTestSecretKey(t), testEpoch, "evicts", 300))
		if o := oldRelay.put(t, v1); o != pkarrrelay.PutStored {
			t.Fatalf("replaying the old packet: %v, want it stored", o)
		}
		clock.Advance(time.Hour) // expired: the network is asked
		for _, opts := range [][]pkarrclient.ResolveOption{nil, {pkarrclient.NetworkOnly()}} {
			var outcomes []pkarrclient.Outcome
			opts = append(opts, pkarrclient.ReportOutcomes(func(o pkarrclient.Outcome) { outcomes = append(outcomes, o) }))
			got, err := c.Resolve(ctx, sk.PublicKey(), opts...)
			if err != nil || !got.Equal(v2) {
				t.Fatalf("got %s, %v; want new", txtOf(got), err)
			}
			if len(outcomes) != 1 || !outcomes[0].Packet.Equal(v1) {
				t.Fatalf("outcomes %+v: the relay should have answered the old packet", outcomes)
			}
		}
		// The network still answers only the old packet, so the new one
		// can come from nowhere but the cache.
		if got, err := c.Resolve(ctx, sk.PublicKey(), pkarrclient.NetworkOnly()); err != nil || !got.Equal(v2) {
			t.Fatalf("got %s, %v: the old packet replaced the newer one in the cache", txtOf(got), err)
		}
	})
}

func TestPublishThenResolveFromCache(t *testing.T) {
	sk := pkarrclient.NewTestSecretKey(t)
	p := pkarrclient.TXTPacket(t, sk, testEpoch, "v", 300)
	relay := serveRelay(t, relayServerOptions{})
	r := newTestRelay(t, relay.URL)
	c := newTestClient(t, []pkarrclient.Backend{r})
	ctx := ctxFor(t)
	if _, err := c.Publish(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve(ctx, sk.PublicKey())
	if err != nil || !got.Equal(p) {
		t.Fatalf("%v, %v", got, err)
	}
	if relay.probe.gets.Load() != 0 {
		t.Fatalf("%d GETs: the published packet should be served from the cache", relay.probe.gets.Load())
	}
	got, err = c.Resolve(ctx, sk.PublicKey(), pkarrclient.NetworkOnly())
	if err != nil || !got.Equal(p) || relay.probe.gets.Load() != 1 {
		t.Fatalf("%v, %v, %d GETs", got, err, relay.probe.gets.Load())
	}
}

// Many goroutines publishing and resolving through one Client, over real
// HTTP, under -race.
func TestClientConcurrency(t *testing.T) {
	relays := []*relayServer{serveRelay(t, relayServerOptions{}), serveRelay(t, relayServerOptions{}), serveRelay(t, relayServerOptions{})}
	var backends []pkarrclient.Backend
	for _, s := range relays {
		backends = append(backends, newTestRelay(t, s.URL))
	}
	backends = append(backends, flakyBackend{})
	const cacheSize = 4
	c := newTestClient(t, backends, pkarrclient.WithCacheSize(cacheSize), pkarrclient.WithTTLClamp(0, 0))
	ctx := ctxFor(t)

	keys := make([]*pkarrclient.SecretKey, 6)
	for i := range keys {
		keys[i] = pkarrclient.NewTestSecretKey(t)
	}
	const workers, rounds = 12, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				sk := keys[(w+i)%len(keys)]
				// Strictly increasing per worker; workers share keys, so
				// some publishes lose with 409, which is fine.
				p := pkarrclient.TXTPacket(t, sk, testEpoch+pkarrclient.Timestamp(i*workers+w), fmt.Sprint(w, "-", i), 60)
				if _, err := c.Publish(ctx, p); err != nil && !errors.Is(err, pkarrclient.ErrNotMostRecent) {
					errs <- fmt.Errorf("publish: %w", err)
				}
				var got *pkarrclient.SignedPacket
				var err error
				if i%3 == 0 {
					got, err = c.ResolveMostRecent(ctx, sk.PublicKey())
				} else {
					got, err = c.Resolve(ctx, sk.PublicKey(), pkarrclient.NetworkOnly())
				}
				if err != nil {
					errs <- fmt.Errorf("resolve: %w", err)
				} else if got.PublicKey() != sk.PublicKey() {
					errs <- errors.New("resolve returned another key's packet")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every relay and the cache converge on one newest packet per key that
	// the relays hold.
	for _, sk := range keys {
		got, err := c.ResolveMostRecent(ctx, sk.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		var newest *pkarrclient.SignedPacket
		for _, s := range relays {
			if p := s.packet(t, sk.PublicKey()); p != nil && p.MoreRecentThan(newest) {
				newest = p
			}
		}
		if !got.Equal(newest) {
			t.Errorf("ResolveMostRecent %s, relays' newest %s", got, newest)
		}
	}
	// Count the cached packets: with every relay down, Resolve answers a
	// key only from the cache (stale beats nothing).
	for _, s := range relays {
		s.srv.Close()
	}
	n := 0
	for _, sk := range keys {
		got, err := c.Resolve(ctx, sk.PublicKey())
		switch {
		case err == nil && got.PublicKey() == sk.PublicKey():
			n++
		case err == nil:
			t.Errorf("resolve returned another key's packet")
		case !errors.Is(err, pkarrclient.ErrUnavailable):
			t.Errorf("resolve with the relays down: %v", err)
		}
	}
	if n > cacheSize {
		t.Errorf("cache holds %d packets, limit %d", n, cacheSize)
	}
	// The converging resolves above filled the cache; a count below the
	// limit means this probe cannot see it.
	if n < cacheSize {
		t.Errorf("only %d keys answered from the cache, want %d", n, cacheSize)
	}
}
