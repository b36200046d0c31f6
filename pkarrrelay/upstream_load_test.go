package pkarrrelay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
	"golang.org/x/time/rate"
)

// These tests drive the upstream path the way the Mainline DHT will: a
// slow upstream, many clients, absent keys. The DHT itself is external, so
// fakeDHT stands in for it behind the same pkarrclient.Backend seam.

// fakeDHT holds packets, records every call, honours Query.NewerThan as
// BEP44's seq does, and can hold lookups until the test lets them go.
type fakeDHT struct {
	entered chan pkarrclient.Query // every Resolve sends its query here on entry

	mu        sync.Mutex
	packets   map[pkarrclient.PublicKey]*pkarrclient.SignedPacket
	queries   []pkarrclient.Query
	publishes int
	canceled  int                           // lookups that ended because their context did
	gate      chan struct{}                 // while non-nil, lookups wait for it to close
	pubGate   chan struct{}                 // while non-nil, publishes wait for it to close
	pubFail   int                           // publishes still to fail with ErrUnavailable
	pubKeys   map[pkarrclient.PublicKey]int // publish calls per key
	// ignoreNewerThan makes Resolve answer with whatever it holds.
	ignoreNewerThan bool
}

func newFakeDHT() *fakeDHT {
	return &fakeDHT{
		entered: make(chan pkarrclient.Query, 1000),
		packets: make(map[pkarrclient.PublicKey]*pkarrclient.SignedPacket),
	}
}

func (d *fakeDHT) Name() string { return "fake-dht" }

func (d *fakeDHT) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	d.mu.Lock()
	d.queries = append(d.queries, q)
	gate := d.gate
	d.mu.Unlock()
	select {
	case d.entered <- q:
	default: // nobody is watching this many
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			d.mu.Lock()
			d.canceled++
			d.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.packets[q.Key]
	if !ok || (p.Timestamp() <= q.NewerThan && !d.ignoreNewerThan) {
		return nil, fmt.Errorf("fake dht: %w", pkarrclient.ErrNotFound)
	}
	return p, nil
}

func (d *fakeDHT) Publish(ctx context.Context, p *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	d.mu.Lock()
	gate := d.pubGate
	d.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return pkarrclient.PublishReceipt{}, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.publishes++
	if d.pubKeys == nil {
		d.pubKeys = map[pkarrclient.PublicKey]int{}
	}
	d.pubKeys[p.PublicKey()]++
	if d.pubFail > 0 {
		d.pubFail--
		return pkarrclient.PublishReceipt{}, fmt.Errorf("fake dht: %w", pkarrclient.ErrUnavailable)
	}
	if held := d.packets[p.PublicKey()]; held != nil && held.MoreRecentThan(p) {
		return pkarrclient.PublishReceipt{}, pkarrclient.ErrNotMostRecent
	}
	d.packets[p.PublicKey()] = p
	return pkarrclient.PublishReceipt{DHTNodes: 12}, nil
}

// set makes the DHT hold p, whatever it held before.
func (d *fakeDHT) set(p *pkarrclient.SignedPacket) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.packets[p.PublicKey()] = p
}

// hold makes lookups wait until release.
func (d *fakeDHT) hold() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gate = make(chan struct{})
}

func (d *fakeDHT) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gate != nil {
		close(d.gate)
		d.gate = nil
	}
}

func (d *fakeDHT) counts() (resolves, publishes, canceled int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queries), d.publishes, d.canceled
}

// waitEntered returns the next lookup to reach the DHT.
func (d *fakeDHT) waitEntered(t testing.TB) pkarrclient.Query {
	t.Helper()
	select {
	case q := <-d.entered:
		return q
	case <-time.After(10 * time.Second):
		t.Fatal("no lookup reached the DHT")
		return pkarrclient.Query{}
	}
}

// holdPublishes makes publishes wait until releasePublishes.
func (d *fakeDHT) holdPublishes() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pubGate = make(chan struct{})
}

func (d *fakeDHT) releasePublishes() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pubGate != nil {
		close(d.pubGate)
		d.pubGate = nil
	}
}

// holding returns the packet the DHT holds for key, or nil.
func (d *fakeDHT) holding(key pkarrclient.PublicKey) *pkarrclient.SignedPacket {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.packets[key]
}

// publishesOf returns how many publish calls reached the DHT for key.
func (d *fakeDHT) publishesOf(key pkarrclient.PublicKey) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pubKeys[key]
}

// withAfterPublish sets the hook called after every background publish.
func withAfterPublish(f func(pkarrclient.PublicKey, error)) Option {
	return func(c *handlerConfig) error {
		c.afterPublish = f
		return nil
	}
}

// publishWatch collects the ends of background publishes.
type publishWatch chan publishEnd

type publishEnd struct {
	key pkarrclient.PublicKey
	err error
}

func (w publishWatch) option() Option {
	return withAfterPublish(func(k pkarrclient.PublicKey, err error) {
		select {
		case w <- publishEnd{k, err}:
		default: // nobody is watching this many
		}
	})
}

// wait returns the outcome of the next publish call for key.
func (w publishWatch) wait(t testing.TB, key pkarrclient.PublicKey) error {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-w:
			if e.key == key {
				return e.err
			}
		case <-deadline:
			t.Fatal("no publish for the key finished")
			return nil
		}
	}
}

// withAfterFlight sets the hook called at the end of every upstream lookup.
func withAfterFlight(f func(pkarrclient.PublicKey)) Option {
	return func(c *handlerConfig) error {
		c.afterFlight = f
		return nil
	}
}

// dhtRelay is a relay with a fakeDHT upstream, on a fake clock.
type dhtRelay struct {
	*testRelay
	dht       *fakeDHT
	landed    chan pkarrclient.PublicKey // one key per finished lookup
	published publishWatch               // one entry per finished publish
}

func newDHTRelay(t testing.TB, store Store, opts ...Option) *dhtRelay {
	t.Helper()
	dht := newFakeDHT()
	landed := make(chan pkarrclient.PublicKey, 1000)
	published := make(publishWatch, 1000)
	all := append([]Option{
		WithUpstream(dht),
		withAfterFlight(func(k pkarrclient.PublicKey) { landed <- k }),
		published.option(),
	}, opts...)
	r := newRelay(t, store, all...)
	// A request that hangs fails the test instead of stalling it: a
	// deadline for a broken relay, not a measure of speed.
	r.client = &http.Client{Transport: r.client.Transport, Timeout: 10 * time.Second}
	// Lookups still held when the test ends are cancelled by the
	// handler's Close; releasing first makes that path irrelevant.
	t.Cleanup(dht.release)
	t.Cleanup(dht.releasePublishes)
	return &dhtRelay{testRelay: r, dht: dht, landed: landed, published: published}
}

// waitLanded waits until a lookup for key has finished and stored what it
// found.
func (r *dhtRelay) waitLanded(key pkarrclient.PublicKey) {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case k := <-r.landed:
			if k == key {
				return
			}
		case <-deadline:
			r.t.Fatal("the upstream lookup did not finish")
		}
	}
}

func (r *dhtRelay) wantResolves(want int) {
	r.t.Helper()
	if got, _, _ := r.dht.counts(); got != want {
		r.t.Fatalf("the DHT was asked %d times, want %d", got, want)
	}
}

// wantBody checks a GET's answer.
func wantBody(t testing.TB, resp *http.Response, body []byte, want *pkarrclient.SignedPacket) {
	t.Helper()
	wantStatus(t, resp, http.StatusOK)
	if !bytes.Equal(body, want.RelayPayload()) {
		t.Fatalf("GET %s served another packet", resp.Request.URL.Path)
	}
}

// upstreamCount reads MetricUpstreamCalls for op and result.
func upstreamCount(t testing.TB, h *Handler, op, result string) float64 {
	t.Helper()
	families, err := h.gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != MetricUpstreamCalls {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["op"] == op && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func wantUpstreamCount(t testing.TB, h *Handler, op, result string, want float64) {
	t.Helper()
	if got := upstreamCount(t, h, op, result); got != want {
		t.Errorf("%s{op=%q,result=%q} = %v, want %v", MetricUpstreamCalls, op, result, got, want)
	}
}

// TestStaleRecordServedThenRefreshed follows one key through two TTLs: a
// stale packet is answered at once while the DHT is asked for anything
// newer, the newer packet replaces it, and a packet the DHT confirms is not
// asked about again before another TTL has passed.
func TestStaleRecordServedThenRefreshed(t *testing.T) {
	// No timeout ends a held lookup: a GET that waited for one would hang
	// until the client's deadline and fail.
	r := newDHTRelay(t, NewMemoryStore(10), WithUpstreamTimeout(time.Hour))
	sk := newSecretKey(t)
	key := sk.PublicKey()
	// TTL 60 is clamped to the minimum of 300 s, as Cache-Control is.
	old := sign(t, sk, tsAt(0), 60, "old")
	wantStatus(t, r.putPacket(old), http.StatusNoContent)
	newer := sign(t, sk, tsAt(time.Minute), 60, "newer")
	r.dht.set(newer)

	r.clock.Advance(300 * time.Second)
	resp, body := r.get(key, nil)
	wantBody(t, resp, body, old)
	r.wantResolves(0)

	// One second past the clamped TTL: stale. The DHT holds the lookup,
	// so answers that arrive prove the GETs did not wait for it.
	r.clock.Advance(time.Second)
	r.dht.hold()
	for range 5 {
		resp, body = r.get(key, nil)
		wantBody(t, resp, body, old)
		wantHeader(t, resp, "Cache-Control", "public, max-age=300")
	}
	q := r.dht.waitEntered(t)
	if q.Key != key || q.NewerThan != old.Timestamp() {
		t.Fatalf("refresh asked %+v, want the key and NewerThan %d", q, old.Timestamp())
	}
	r.dht.release()
	r.waitLanded(key)
	r.wantResolves(1) // five stale GETs, one refresh

	resp, body = r.get(key, nil)
	wantBody(t, resp, body, newer)
	r.wantResolves(1)

	// The new packet counts as current from the refresh on.
	r.clock.Advance(300 * time.Second)
	resp, body = r.get(key, nil)
	wantBody(t, resp, body, newer)
	r.wantResolves(1)

	// Stale again; this time the DHT has nothing newer.
	r.clock.Advance(time.Second)
	resp, body = r.get(key, nil)
	wantBody(t, resp, body, newer)
	r.waitLanded(key)
	r.wantResolves(2)
	if q := r.dht.waitEntered(t); q.NewerThan != newer.Timestamp() {
		t.Errorf("second refresh asked NewerThan %d, want %d", q.NewerThan, newer.Timestamp())
	}
	// "Nothing newer" marks the key refreshed: no lookup for another TTL.
	for range 3 {
		resp, body = r.get(key, nil)
		wantBody(t, resp, body, newer)
	}
	r.clock.Advance(300 * time.Second)
	resp, body = r.get(key, nil)
	wantBody(t, resp, body, newer)
	r.wantResolves(2)
	r.clock.Advance(time.Second)
	resp, body = r.get(key, nil)
	wantBody(t, resp, body, newer)
	r.waitLanded(key)
	r.wantResolves(3)

	wantUpstreamCount(t, r.h, opRefresh, resultHit, 1)
	wantUpstreamCount(t, r.h, opRefresh, resultMiss, 2)
	wantUpstreamCount(t, r.h, opRefresh, resultShared, 4)
}

// TestRefreshIgnoresBadAnswers: a refresh answer that is older than the
// held packet or stamped far ahead never replaces it.
func TestRefreshIgnoresBadAnswers(t *testing.T) {
	for name, upstreamPacket := range map[string]func(sk *pkarrclient.SecretKey) *pkarrclient.SignedPacket{
		"older": func(sk *pkarrclient.SecretKey) *pkarrclient.SignedPacket {
			return sign(t, sk, tsAt(-time.Hour), 300, "older")
		},
		"far future": func(sk *pkarrclient.SecretKey) *pkarrclient.SignedPacket {
			return sign(t, sk, tsAt(time.Hour), 300, "ahead")
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := newDHTRelay(t, NewMemoryStore(10))
			sk := newSecretKey(t)
			held := sign(t, sk, tsAt(0), 300, "held")
			wantStatus(t, r.putPacket(held), http.StatusNoContent)
			r.dht.set(upstreamPacket(sk))
			r.dht.mu.Lock()
			r.dht.ignoreNewerThan = true // as a careless backend might
			r.dht.mu.Unlock()
			r.clock.Advance(301 * time.Second)
			resp, body := r.get(sk.PublicKey(), nil)
			wantBody(t, resp, body, held)
			r.waitLanded(sk.PublicKey())
			// Still the held packet, now confirmed current: no second lookup.
			resp, body = r.get(sk.PublicKey(), nil)
			wantBody(t, resp, body, held)
			r.wantResolves(1)
		})
	}
}

func TestNegativeCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		ttl  time.Duration
	}{
		{"default", nil, DefaultNegativeCacheTTL},
		{"one minute", []Option{WithNegativeCacheTTL(time.Minute)}, time.Minute},
		{"off", []Option{WithNegativeCacheTTL(0)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newDHTRelay(t, NewMemoryStore(10), tc.opts...)
			key := newSecretKey(t).PublicKey()
			for range 3 {
				resp, _ := r.get(key, nil)
				wantStatus(t, resp, http.StatusNotFound)
			}
			if tc.ttl == 0 {
				r.wantResolves(3)
				return
			}
			r.wantResolves(1)
			wantUpstreamCount(t, r.h, opResolve, resultMiss, 1)
			wantUpstreamCount(t, r.h, opResolve, resultNegative, 2)

			r.clock.Advance(tc.ttl - time.Second)
			resp, _ := r.get(key, nil)
			wantStatus(t, resp, http.StatusNotFound)
			r.wantResolves(1)

			r.clock.Advance(time.Second)
			resp, _ = r.get(key, nil)
			wantStatus(t, resp, http.StatusNotFound)
			r.wantResolves(2)
		})
	}
}

// TestPutClearsNegativeCache: once a key is PUT, an earlier "not found"
// no longer answers for it, even after the store has dropped the packet.
func TestPutClearsNegativeCache(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(1)) // room for one packet
	a, b := newSecretKey(t), newSecretKey(t)
	pa := sign(t, a, tsAt(0), 300, "a")

	resp, _ := r.get(a.PublicKey(), nil)
	wantStatus(t, resp, http.StatusNotFound)
	r.wantResolves(1)
	wantStatus(t, r.putPacket(pa), http.StatusNoContent) // also published to the DHT
	wantStatus(t, r.putPacket(sign(t, b, tsAt(0), 300, "b")), http.StatusNoContent)
	if _, err := r.h.store.Get(context.Background(), a.PublicKey()); err == nil {
		t.Fatal("the store kept a; the test needs it evicted")
	}

	// A store miss again: asked upstream, not answered from the negative
	// cache.
	resp, body := r.get(a.PublicKey(), nil)
	wantBody(t, resp, body, pa)
	r.wantResolves(2)
}

func TestNegativeCacheBounded(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(10), WithUpstreamCacheSize(1))
	a, b := newSecretKey(t).PublicKey(), newSecretKey(t).PublicKey()
	for i, key := range []pkarrclient.PublicKey{a, b, a, a} {
		resp, _ := r.get(key, nil)
		wantStatus(t, resp, http.StatusNotFound)
		// The third GET finds a's entry pushed out by b's.
		r.wantResolves(min(i+1, 3))
	}
}

// TestUpstreamSingleFlight sends 100 concurrent GETs for a key the store
// does not hold: they share one DHT lookup and all get its answer.
func TestUpstreamSingleFlight(t *testing.T) {
	const n = 100
	r := newDHTRelay(t, NewMemoryStore(10))
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	r.dht.set(p)
	r.dht.hold()

	codes := make([]int, n)
	bodies := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i], bodies[i] = fetch(t, r.client, r.keyURL(sk.PublicKey())) })
	}
	r.dht.waitEntered(t)
	// Release only once every GET waits on the lookup; a late GET would
	// find the answer stored and prove nothing.
	waitFor(t, "all GETs to join the lookup", func() bool {
		return upstreamCount(t, r.h, opResolve, resultShared) == n-1
	})
	r.dht.release()
	wg.Wait()

	for i := range n {
		if codes[i] != http.StatusOK || !bytes.Equal(bodies[i], p.RelayPayload()) {
			t.Fatalf("GET %d: status %d, body of %d bytes", i, codes[i], len(bodies[i]))
		}
	}
	r.wantResolves(1)
	wantUpstreamCount(t, r.h, opResolve, resultHit, 1)
}

// fetch GETs url from any goroutine: failures are t.Error, not t.Fatal.
func fetch(t testing.TB, client *http.Client, url string) (int, []byte) {
	resp, err := client.Get(url)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return resp.StatusCode, body
}

// waitFor polls cond until it holds, failing after 10 s. It waits for a
// state, never asserts how fast it comes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUpstreamBudgetExhausted takes the only upstream slot with a held
// lookup, then checks each kind of upstream work that finds no budget: a
// miss is refused, a refresh skipped, and a publish waits for the slot.
func TestUpstreamBudgetExhausted(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(10), WithUpstreamBudget(1, rate.Inf, 0))
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	resp := r.putPacket(p) // the publish takes the slot and gives it back
	wantStatus(t, resp, http.StatusNoContent)
	if err := r.published.wait(t, sk.PublicKey()); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(301 * time.Second) // p is stale from here on

	r.dht.hold()
	absent := newSecretKey(t).PublicKey()
	heldCode := make(chan int, 1)
	go func() {
		code, _ := fetch(t, r.client, r.keyURL(absent))
		heldCode <- code
	}()
	r.dht.waitEntered(t)

	// A miss answers 503 at once, saying when to come back.
	resp, _ = r.get(newSecretKey(t).PublicKey(), nil)
	wantStatus(t, resp, http.StatusServiceUnavailable)
	wantHeader(t, resp, "Retry-After", "1")
	// The stale packet is served; its refresh is skipped.
	resp, body := r.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p)
	// A PUT is stored and answered; its publish waits for the slot.
	other := sign(t, newSecretKey(t), tsAt(time.Second), 300, "other")
	resp = r.putPacket(other)
	wantStatus(t, resp, http.StatusNoContent)
	if v := resp.Header.Values(HeaderDHTStoredNodes); len(v) != 0 {
		t.Errorf("%s = %q on a PUT whose publish is still to come", HeaderDHTStoredNodes, v)
	}
	resp, body = r.get(other.PublicKey(), nil)
	wantBody(t, resp, body, other)
	if resolves, publishes, _ := r.dht.counts(); resolves != 1 || publishes != 1 {
		t.Errorf("the DHT saw %d lookups and %d publishes, want 1 and 1", resolves, publishes)
	}
	wantUpstreamCount(t, r.h, opResolve, resultBudget, 1)
	wantUpstreamCount(t, r.h, opRefresh, resultBudget, 1)

	r.dht.release()
	if code := <-heldCode; code != http.StatusNotFound {
		t.Errorf("the held miss answered %d", code)
	}
	// The slot is free again: the waiting publish goes out, and the stale
	// packet's next GET refreshes it.
	if err := r.published.wait(t, other.PublicKey()); err != nil {
		t.Fatal(err)
	}
	resp, body = r.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p)
	r.waitLanded(sk.PublicKey())
	r.wantResolves(2)
}

func TestUpstreamRateBudget(t *testing.T) {
	// One lookup every two seconds, no burst beyond one.
	r := newDHTRelay(t, NewMemoryStore(10), WithUpstreamBudget(8, 0.5, 1))
	a, b := newSecretKey(t).PublicKey(), newSecretKey(t).PublicKey()
	resp, _ := r.get(a, nil)
	wantStatus(t, resp, http.StatusNotFound)
	resp, _ = r.get(b, nil)
	wantStatus(t, resp, http.StatusServiceUnavailable)
	wantHeader(t, resp, "Retry-After", "2")
	r.wantResolves(1)

	r.clock.Advance(2 * time.Second)
	resp, _ = r.get(b, nil)
	wantStatus(t, resp, http.StatusNotFound)
	r.wantResolves(2)
}

// TestUpstreamLookupOutlivesRequest: a lookup belongs to no single request,
// so the client that started it leaving does not cancel it, and its answer
// is stored for the next GET.
func TestUpstreamLookupOutlivesRequest(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(10))
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	r.dht.set(p)
	r.dht.hold()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.keyURL(sk.PublicKey()), nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := r.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	r.dht.waitEntered(t)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the request was answered before the lookup was released")
	}
	r.dht.release()
	r.waitLanded(sk.PublicKey())
	if _, _, canceled := r.dht.counts(); canceled != 0 {
		t.Fatal("the lookup was cancelled with the request")
	}
	resp, body := r.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p)
	r.wantResolves(1)
}

// TestUpstreamTimeout: a lookup that runs out of time answers 504 and is
// not remembered as "not found".
func TestUpstreamTimeout(t *testing.T) {
	// A real-time deadline: context timeouts do not follow the fake clock.
	r := newDHTRelay(t, NewMemoryStore(10), WithUpstreamTimeout(20*time.Millisecond))
	key := newSecretKey(t).PublicKey()
	r.dht.hold()
	resp, _ := r.get(key, nil)
	wantStatus(t, resp, http.StatusGatewayTimeout)
	if _, _, canceled := r.dht.counts(); canceled != 1 {
		t.Errorf("%d lookups saw their context end, want 1", canceled)
	}
	r.dht.release()
	resp, _ = r.get(key, nil)
	wantStatus(t, resp, http.StatusNotFound)
	r.wantResolves(2)
}

// TestHandlerCloseStopsLookups: Close cancels a background refresh and
// returns only after its goroutine has ended; the closed handler serves
// from its store and starts no upstream work.
func TestHandlerCloseStopsLookups(t *testing.T) {
	// A timeout that cannot end the lookup first: only Close can.
	r := newDHTRelay(t, NewMemoryStore(10), WithUpstreamTimeout(time.Hour))
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	wantStatus(t, r.putPacket(p), http.StatusNoContent)
	if err := r.published.wait(t, sk.PublicKey()); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(301 * time.Second)
	r.dht.hold()
	resp, body := r.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p)
	r.dht.waitEntered(t)

	closed := make(chan error, 1)
	go func() { closed <- r.h.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		r.dht.release() // lets the test end
		t.Fatal("Close did not cancel the lookup in flight")
	}
	select {
	case <-r.landed:
	default:
		t.Fatal("Close returned while a lookup was still running")
	}
	if _, _, canceled := r.dht.counts(); canceled != 1 {
		t.Errorf("%d lookups cancelled by Close, want 1", canceled)
	}
	if stacks := strings.Join(leakCandidates(), "\n"); strings.Contains(stacks, "(*Handler).fly") {
		t.Errorf("a lookup goroutine survived Close:\n%s", stacks)
	}

	resp, body = r.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p)
	resp, _ = r.get(newSecretKey(t).PublicKey(), nil)
	wantStatus(t, resp, http.StatusServiceUnavailable)
	resp = r.putPacket(sign(t, newSecretKey(t), tsAt(0), 300, "y"))
	wantStatus(t, resp, http.StatusNoContent)
	if v := resp.Header.Values(HeaderDHTStoredNodes); len(v) != 0 {
		t.Errorf("%s = %q from a closed handler", HeaderDHTStoredNodes, v)
	}
	if resolves, publishes, _ := r.dht.counts(); resolves != 1 || publishes != 1 {
		t.Errorf("the DHT saw %d lookups and %d publishes, want 1 and 1", resolves, publishes)
	}
	if err := r.h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	h, err := NewHandler(NewMemoryStore(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close without an upstream: %v", err)
	}
}

// TestServeClosesHandler: when a Server's context ends, Serve returns only
// after the Handler's background lookups have stopped.
func TestServeClosesHandler(t *testing.T) {
	dht := newFakeDHT()
	landed := make(chan pkarrclient.PublicKey, 10)
	clock := clockwork.NewFakeClockAt(epoch)
	h := newTestHandler(t, NewMemoryStore(10), WithClock(clock), WithUpstream(dht),
		withAfterFlight(func(k pkarrclient.PublicKey) { landed <- k }))
	rs := startServer(t, h)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	url := rs.url + "/" + sk.PublicKey().String()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(p.RelayPayload()))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantStatus(t, resp, http.StatusNoContent)

	clock.Advance(301 * time.Second)
	dht.hold()
	defer dht.release()
	if code, _ := fetch(t, client, url); code != http.StatusOK {
		t.Fatalf("GET answered %d", code)
	}
	dht.waitEntered(t)

	if err := rs.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case <-landed:
	default:
		t.Fatal("Serve returned while a lookup was still running")
	}
	if _, _, canceled := dht.counts(); canceled != 1 {
		t.Errorf("%d lookups cancelled at shutdown, want 1", canceled)
	}
}
