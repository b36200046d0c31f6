package pkarrclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// fakeBackend is a scripted Backend. Unset functions mean "not found" for
// resolve and "accepted" for publish.
type fakeBackend struct {
	name      string
	publish   func(ctx context.Context, p *SignedPacket) (PublishReceipt, error)
	resolve   func(ctx context.Context, q Query) (*SignedPacket, error)
	publishes atomic.Int64
	resolves  atomic.Int64

	mu      sync.Mutex
	queries []Query
}

func (f *fakeBackend) Name() string { return f.name }

func (f *fakeBackend) Publish(ctx context.Context, p *SignedPacket) (PublishReceipt, error) {
	f.publishes.Add(1)
	if f.publish == nil {
		return PublishReceipt{}, nil
	}
	return f.publish(ctx, p)
}

func (f *fakeBackend) Resolve(ctx context.Context, q Query) (*SignedPacket, error) {
	f.resolves.Add(1)
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	if f.resolve == nil {
		return nil, &BackendError{Backend: f.name, Op: opResolve, Status: 404, Err: ErrNotFound}
	}
	return f.resolve(ctx, q)
}

func (f *fakeBackend) lastQuery() Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		return Query{}
	}
	return f.queries[len(f.queries)-1]
}

func failWith(name string, err error) func(context.Context, Query) (*SignedPacket, error) {
	return func(context.Context, Query) (*SignedPacket, error) {
		return nil, &BackendError{Backend: name, Op: opResolve, Err: err}
	}
}

func answer(p *SignedPacket) func(context.Context, Query) (*SignedPacket, error) {
	return func(context.Context, Query) (*SignedPacket, error) { return p, nil }
}

// hang blocks until the call is cancelled.
func hang(ctx context.Context, _ Query) (*SignedPacket, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func newTestClient(t *testing.T, backends []Backend, opts ...ClientOption) *Client {
	t.Helper()
	c, err := NewClient(backends, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewClientValidates(t *testing.T) {
	if _, err := NewClient(nil); !errors.Is(err, ErrNoBackends) {
		t.Fatalf("NewClient(nil) = %v, want ErrNoBackends", err)
	}
	if _, err := NewClient([]Backend{}); !errors.Is(err, ErrNoBackends) {
		t.Fatalf("NewClient(empty) = %v, want ErrNoBackends", err)
	}
	if _, err := NewClient([]Backend{&fakeBackend{}, nil}); err == nil {
		t.Fatal("NewClient with a nil backend succeeded")
	}
	b := []Backend{&fakeBackend{name: "a"}}
	for name, opt := range map[string]ClientOption{
		"negative cache":   WithCacheSize(-1),
		"min > max":        WithTTLClamp(10, 5),
		"nil policy":       WithSuccessPolicy(nil),
		"nil clock":        WithClock(nil),
		"negative timeout": WithMostRecentTimeout(-time.Second),
		"nil logger":       WithLogger(nil),
	} {
		if _, err := NewClient(b, opt); err == nil {
			t.Errorf("%s: NewClient succeeded", name)
		}
	}
	c := newTestClient(t, b, nil, WithCacheSize(0), WithTTLClamp(0, 0), WithMostRecentTimeout(0))
	got := c.Backends()
	got[0] = nil
	if c.Backends()[0] == nil {
		t.Fatal("Backends returns the Client's own slice")
	}
}

func TestSuccessPolicies(t *testing.T) {
	for _, tc := range []struct {
		accepted, total           int
		atLeastOne, majority, all bool
	}{
		{0, 0, false, false, false},
		{0, 3, false, false, false},
		{1, 1, true, true, true},
		{1, 2, true, false, false},
		{2, 2, true, true, true},
		{1, 3, true, false, false},
		{2, 3, true, true, false},
		{3, 3, true, true, true},
		{2, 4, true, false, false},
		{3, 4, true, true, false},
	} {
		if got := AtLeastOne(tc.accepted, tc.total); got != tc.atLeastOne {
			t.Errorf("AtLeastOne(%d, %d) = %v", tc.accepted, tc.total, got)
		}
		if got := Majority(tc.accepted, tc.total); got != tc.majority {
			t.Errorf("Majority(%d, %d) = %v", tc.accepted, tc.total, got)
		}
		if got := All(tc.accepted, tc.total); got != tc.all {
			t.Errorf("All(%d, %d) = %v", tc.accepted, tc.total, got)
		}
	}
}

// mixedPublishBackends: one accepts (reporting 5 DHT nodes), one holds a
// newer packet, one is rate limited.
func mixedPublishBackends() []Backend {
	return []Backend{
		&fakeBackend{name: "ok", publish: func(context.Context, *SignedPacket) (PublishReceipt, error) {
			return PublishReceipt{DHTNodes: 5}, nil
		}},
		&fakeBackend{name: "conflict", publish: func(context.Context, *SignedPacket) (PublishReceipt, error) {
			return PublishReceipt{DHTNodes: 99}, &BackendError{Backend: "conflict", Op: opPublish, Status: 409, Err: ErrNotMostRecent}
		}},
		&fakeBackend{name: "limited", publish: func(context.Context, *SignedPacket) (PublishReceipt, error) {
			return PublishReceipt{}, &BackendError{Backend: "limited", Op: opPublish, Status: 429, Err: &RateLimitError{RetryAfter: 7 * time.Second}}
		}},
	}
}

func TestPublishPolicies(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)

	t.Run("AtLeastOne", func(t *testing.T) {
		c := newTestClient(t, mixedPublishBackends())
		res, err := c.Publish(testContext(t), p)
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 1 || len(res.Outcomes) != 3 {
			t.Fatalf("result %+v", res)
		}
		for i, name := range []string{"ok", "conflict", "limited"} {
			if res.Outcomes[i].Backend != name {
				t.Errorf("outcome %d is %q, want %q", i, res.Outcomes[i].Backend, name)
			}
		}
		if res.Outcomes[0].Receipt.DHTNodes != 5 || res.Outcomes[1].Receipt.DHTNodes != 0 {
			t.Errorf("receipts %+v %+v", res.Outcomes[0].Receipt, res.Outcomes[1].Receipt)
		}
		if !errors.Is(res.Outcomes[1].Err, ErrNotMostRecent) || res.Outcomes[0].Err != nil {
			t.Errorf("outcome errors %v, %v", res.Outcomes[0].Err, res.Outcomes[1].Err)
		}
		if e, ok := c.cache.get(sk.PublicKey()); !ok || !e.packet.Equal(p) {
			t.Error("a successful publish did not cache the packet")
		}
	})

	for _, tc := range []struct {
		name   string
		policy SuccessPolicy
	}{{"Majority", Majority}, {"All", All}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, mixedPublishBackends(), WithSuccessPolicy(tc.policy))
			res, err := c.Publish(testContext(t), p)
			if res == nil || res.Accepted != 1 {
				t.Fatalf("result %+v: a failed policy must still return the result", res)
			}
			var pe *PublishError
			if !errors.As(err, &pe) || pe.Accepted != 1 || len(pe.Outcomes) != 3 {
				t.Fatalf("err = %v, want a *PublishError", err)
			}
			if !errors.Is(err, ErrNotMostRecent) || !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrNotFound) {
				t.Errorf("PublishError does not unwrap to the outcome errors: %v", err)
			}
			var rl *RateLimitError
			if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
				t.Errorf("errors.As(*RateLimitError) = %v", rl)
			}
			var be *BackendError
			if !errors.As(err, &be) || be.Backend != "conflict" {
				t.Errorf("errors.As(*BackendError) = %+v", be)
			}
			if len(pe.Unwrap()) != 2 {
				t.Errorf("Unwrap() has %d errors, want 2", len(pe.Unwrap()))
			}
			for _, want := range []string{"accepted by 1 of 3", "conflict", "limited"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q does not mention %q", err, want)
				}
			}
			if _, ok := c.cache.get(sk.PublicKey()); ok {
				t.Error("a failed publish cached the packet")
			}
		})
	}

	t.Run("All succeeds", func(t *testing.T) {
		c := newTestClient(t, []Backend{&fakeBackend{name: "a"}, &fakeBackend{name: "b"}}, WithSuccessPolicy(All))
		res, err := c.Publish(testContext(t), p)
		if err != nil || res.Accepted != 2 {
			t.Fatalf("%+v, %v", res, err)
		}
	})

	t.Run("custom policy and plain errors", func(t *testing.T) {
		plain := errors.New("plain failure")
		c := newTestClient(t, []Backend{
			&fakeBackend{name: "a", publish: func(context.Context, *SignedPacket) (PublishReceipt, error) { return PublishReceipt{}, plain }},
		}, WithSuccessPolicy(func(accepted, total int) bool { return accepted >= 0 }))
		if _, err := c.Publish(testContext(t), p); err != nil {
			t.Fatalf("custom policy ignored: %v", err)
		}
		c = newTestClient(t, []Backend{
			&fakeBackend{name: "a", publish: func(context.Context, *SignedPacket) (PublishReceipt, error) { return PublishReceipt{}, plain }},
		})
		_, err := c.Publish(testContext(t), p)
		if !errors.Is(err, plain) || !strings.Contains(err.Error(), "a: plain failure") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("nil packet", func(t *testing.T) {
		c := newTestClient(t, []Backend{&fakeBackend{name: "a"}})
		if _, err := c.Publish(testContext(t), nil); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPublishConcurrentAndWaitsForAll(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	// Each backend waits until all three are running: a sequential Publish
	// would deadlock (bounded by the test context).
	var started sync.WaitGroup
	started.Add(3)
	release := make(chan struct{})
	go func() { started.Wait(); close(release) }()
	mk := func(name string) Backend {
		return &fakeBackend{name: name, publish: func(ctx context.Context, _ *SignedPacket) (PublishReceipt, error) {
			started.Done()
			select {
			case <-release:
				return PublishReceipt{}, nil
			case <-ctx.Done():
				return PublishReceipt{}, ctx.Err()
			}
		}}
	}
	c := newTestClient(t, []Backend{mk("a"), mk("b"), mk("c")})
	res, err := c.Publish(testContext(t), p)
	if err != nil || res.Accepted != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
}

func TestPublishOverRelays(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	good := newMemRelay()
	stale := newMemRelay()
	stale.set(v2) // already holds a newer packet: 409
	broken, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	rGood := newTestRelay(t, serveMemRelay(t, good).URL)
	rStale := newTestRelay(t, serveMemRelay(t, stale).URL)
	rBroken := newTestRelay(t, broken.URL)
	c := newTestClient(t, []Backend{rGood, rStale, rBroken})
	res, err := c.Publish(testContext(t), v1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || !errors.Is(res.Outcomes[1].Err, ErrNotMostRecent) || !errors.Is(res.Outcomes[2].Err, ErrUnavailable) {
		t.Fatalf("outcomes %+v", res.Outcomes)
	}
	if !good.get(sk.PublicKey()).Equal(v1) {
		t.Fatal("the good relay does not hold the packet")
	}
	c2 := newTestClient(t, []Backend{rGood, rStale, rBroken}, WithSuccessPolicy(Majority))
	_, err = c2.Publish(testContext(t), v1)
	var pe *PublishError
	if !errors.As(err, &pe) || !errors.Is(err, ErrNotMostRecent) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveFirstValidWins(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "honest", 300)
	other := txtPacket(t, newSecretKey(t), testEpoch+100, "other key", 300)
	release := make(chan struct{})
	backends := []Backend{
		&fakeBackend{name: "junk", resolve: failWith("junk", fmt.Errorf("%w: %w", ErrInvalidResponse, ErrBadSignature))},
		&fakeBackend{name: "wrong key", resolve: answer(other)},
		&fakeBackend{name: "nil,nil", resolve: answer(nil)},
		&fakeBackend{name: "honest", resolve: func(ctx context.Context, q Query) (*SignedPacket, error) {
			<-release // answers only after every fast failure is in
			return p, nil
		}},
		&fakeBackend{name: "hangs", resolve: hang},
	}
	var mu sync.Mutex
	var seen []Outcome
	onOutcome := func(o Outcome) {
		mu.Lock()
		seen = append(seen, o)
		if len(seen) == 3 {
			close(release)
		}
		mu.Unlock()
	}
	c := newTestClient(t, backends)
	got, err := c.Resolve(testContext(t), sk.PublicKey(), WithOutcomes(onOutcome))
	if err != nil || !got.Equal(p) {
		t.Fatalf("got %v, %v", got, err)
	}
	if len(seen) != 5 {
		t.Fatalf("%d outcomes reported, want 5 (cancelled ones included)", len(seen))
	}
	byName := map[string]Outcome{}
	for _, o := range seen {
		byName[o.Backend] = o
	}
	if o := byName["wrong key"]; !errors.Is(o.Err, ErrKeyMismatch) || !errors.Is(o.Err, ErrInvalidResponse) || o.Packet != nil {
		t.Errorf("wrong-key outcome %+v", o)
	}
	if o := byName["nil,nil"]; !errors.Is(o.Err, ErrInvalidResponse) {
		t.Errorf("nil,nil outcome %+v", o)
	}
	if o := byName["hangs"]; !errors.Is(o.Err, context.Canceled) {
		t.Errorf("hanging backend's outcome %+v, want cancelled", o)
	}
	if o := byName["honest"]; o.Err != nil || !o.Packet.Equal(p) {
		t.Errorf("honest outcome %+v", o)
	}
}

// The same over real HTTP: a relay answering junk at once, one answering a
// packet signed by another key at once, and an honest relay answering only
// after both bad answers are in.
func TestResolveJunkFastHonestSlow(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "honest", 300)
	junk, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("junk"), 50))
	})
	wrongKey := txtPacket(t, newSecretKey(t), testEpoch+1000, "evil", 300)
	evil, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(wrongKey.RelayPayload())
	})
	honest := newMemRelay()
	honest.set(p)
	honest.gate = make(chan struct{})
	c := newTestClient(t, []Backend{
		newTestRelay(t, junk.URL), newTestRelay(t, evil.URL), newTestRelay(t, serveMemRelay(t, honest).URL),
	})
	var outcomes []Outcome
	got, err := c.Resolve(testContext(t), sk.PublicKey(), WithOutcomes(func(o Outcome) {
		outcomes = append(outcomes, o)
		if len(outcomes) == 2 {
			close(honest.gate)
		}
	}))
	if err != nil || !got.Equal(p) {
		t.Fatalf("got %v, %v", got, err)
	}
	if len(outcomes) != 3 || outcomes[2].Packet == nil || outcomes[2].Backend != c.Backends()[2].Name() {
		t.Fatalf("outcomes %+v, want the honest relay's last", outcomes)
	}
	for _, o := range outcomes[:2] {
		if !errors.Is(o.Err, ErrInvalidResponse) || o.Packet != nil {
			t.Errorf("outcome %+v", o)
		}
	}
	if !errors.Is(outcomes[1].Err, ErrBadSignature) && !errors.Is(outcomes[0].Err, ErrBadSignature) {
		t.Errorf("the other key's packet was not rejected by its signature: %+v", outcomes)
	}
}

func TestResolveCacheTTL(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 30) // TTL 30 s, clamped up to 300
	clock := clockwork.NewFakeClock()
	b := &fakeBackend{name: "b", resolve: answer(p)}
	c := newTestClient(t, []Backend{b}, WithClock(clock))
	ctx := testContext(t)

	resolve := func(want int64) {
		t.Helper()
		got, err := c.Resolve(ctx, sk.PublicKey())
		if err != nil || !got.Equal(p) {
			t.Fatalf("got %v, %v", got, err)
		}
		if n := b.resolves.Load(); n != want {
			t.Fatalf("%d network resolves, want %d", n, want)
		}
	}
	resolve(1)
	resolve(1) // cached
	clock.Advance(299 * time.Second)
	resolve(1) // TTL 30 is clamped to 300: still cached
	clock.Advance(time.Second)
	resolve(2) // expired
	if q := b.lastQuery(); q.NewerThan != p.Timestamp()-1 || q.Fresh {
		t.Errorf("query %+v: want NewerThan just below the cached packet, not Fresh", q)
	}
	resolve(2) // re-found: stored time refreshed
	clock.Advance(300 * time.Second)
	resolve(3)
}

func TestResolveTTLClampMax(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 7200)
	clock := clockwork.NewFakeClock()
	b := &fakeBackend{name: "b", resolve: answer(p)}
	c := newTestClient(t, []Backend{b}, WithClock(clock), WithTTLClamp(60, 600))
	ctx := testContext(t)
	c.Resolve(ctx, sk.PublicKey())
	clock.Advance(599 * time.Second)
	c.Resolve(ctx, sk.PublicKey())
	if n := b.resolves.Load(); n != 1 {
		t.Fatalf("%d resolves before max TTL, want 1", n)
	}
	clock.Advance(time.Second)
	c.Resolve(ctx, sk.PublicKey())
	if n := b.resolves.Load(); n != 2 {
		t.Fatalf("%d resolves after max TTL, want 2", n)
	}
}

func TestResolveNetworkOnly(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	var current atomic.Pointer[SignedPacket]
	current.Store(v1)
	b := &fakeBackend{name: "b", resolve: func(context.Context, Query) (*SignedPacket, error) { return current.Load(), nil }}
	c := newTestClient(t, []Backend{b}, WithClock(clockwork.NewFakeClock()))
	ctx := testContext(t)
	if got, _ := c.Resolve(ctx, sk.PublicKey()); !got.Equal(v1) {
		t.Fatal("first resolve")
	}
	current.Store(v2)
	if got, _ := c.Resolve(ctx, sk.PublicKey()); !got.Equal(v1) {
		t.Fatal("a fresh cached packet should answer without network")
	}
	got, err := c.Resolve(ctx, sk.PublicKey(), NetworkOnly())
	if err != nil || !got.Equal(v2) {
		t.Fatalf("NetworkOnly: %v, %v", got, err)
	}
	if q := b.lastQuery(); !q.Fresh || q.NewerThan != 0 {
		t.Errorf("NetworkOnly query %+v, want Fresh and no NewerThan", q)
	}
	if n := b.resolves.Load(); n != 2 {
		t.Fatalf("%d network resolves, want 2", n)
	}
	// The network answer updated the cache.
	if got, _ := c.Resolve(ctx, sk.PublicKey()); !got.Equal(v2) {
		t.Fatal("the cache was not updated by the NetworkOnly resolve")
	}
	if n := b.resolves.Load(); n != 2 {
		t.Fatalf("%d network resolves, want 2", n)
	}
}

// A relay replaying an old, validly signed packet cannot roll the Client
// back past what it has cached, nor beat a relay holding the newer one in
// ResolveMostRecent.
func TestResolveRollbackProtection(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "old", 300)
	v2 := txtPacket(t, sk, testEpoch+1_000_000, "new", 300)
	oldRelay := newMemRelay()
	oldRelay.set(v1)
	newRelay := newMemRelay()
	newRelay.set(v2)
	newRelay.delay = 50 * time.Millisecond // the replaying relay usually answers first
	clock := clockwork.NewFakeClock()
	backends := []Backend{
		newTestRelay(t, serveMemRelay(t, oldRelay).URL),
		newTestRelay(t, serveMemRelay(t, newRelay).URL),
	}
	ctx := testContext(t)

	t.Run("ResolveMostRecent picks the newest", func(t *testing.T) {
		c := newTestClient(t, backends, WithClock(clock))
		got, err := c.ResolveMostRecent(ctx, sk.PublicKey())
		if err != nil || !got.Equal(v2) {
			t.Fatalf("got %s, %v; want new", txtOf(got), err)
		}
		if e, _ := c.cache.get(sk.PublicKey()); !e.packet.Equal(v2) {
			t.Fatal("cache does not hold the newest packet")
		}
	})

	t.Run("Resolve with the newer packet cached", func(t *testing.T) {
		// Only the replaying relay is asked, so its old packet is the
		// network's answer.
		c := newTestClient(t, backends[:1], WithClock(clock))
		c.cache.put(v2, clock.Now())
		clock.Advance(time.Hour) // expired: the network is asked
		for _, opts := range [][]ResolveOption{nil, {NetworkOnly()}} {
			var outcomes []Outcome
			opts = append(opts, WithOutcomes(func(o Outcome) { outcomes = append(outcomes, o) }))
			got, err := c.Resolve(ctx, sk.PublicKey(), opts...)
			if err != nil || !got.Equal(v2) {
				t.Fatalf("got %s, %v; want new", txtOf(got), err)
			}
			if len(outcomes) != 1 || !outcomes[0].Packet.Equal(v1) {
				t.Fatalf("outcomes %+v: the relay should have answered the old packet", outcomes)
			}
		}
		if e, _ := c.cache.get(sk.PublicKey()); !e.packet.Equal(v2) {
			t.Fatal("the old packet replaced the newer one in the cache")
		}
	})
}

func TestResolveMostRecentAsksEveryone(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	v3 := txtPacket(t, sk, testEpoch+2, "v3", 300)
	a := &fakeBackend{name: "a", resolve: answer(v1)}
	b := &fakeBackend{name: "b", resolve: answer(v2)}
	c := newTestClient(t, []Backend{a, b}, WithClock(clockwork.NewFakeClock()))
	ctx := testContext(t)
	for range 2 { // the second time the cache is fresh, yet the network is asked
		got, err := c.ResolveMostRecent(ctx, sk.PublicKey())
		if err != nil || !got.Equal(v2) {
			t.Fatalf("got %s, %v", txtOf(got), err)
		}
	}
	if a.resolves.Load() != 2 || b.resolves.Load() != 2 {
		t.Fatalf("resolves %d, %d; want 2, 2", a.resolves.Load(), b.resolves.Load())
	}
	// A newer cached packet beats both.
	c.cache.put(v3, time.Time{})
	if got, _ := c.ResolveMostRecent(ctx, sk.PublicKey()); !got.Equal(v3) {
		t.Fatalf("got %s, want the cached v3", txtOf(got))
	}
}

func TestResolveMostRecentTimeout(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	c := newTestClient(t, []Backend{
		&fakeBackend{name: "fast", resolve: answer(p)},
		&fakeBackend{name: "hangs", resolve: hang},
	}, WithMostRecentTimeout(50*time.Millisecond))
	var outcomes []Outcome
	got, err := c.ResolveMostRecent(testContext(t), sk.PublicKey(), WithOutcomes(func(o Outcome) { outcomes = append(outcomes, o) }))
	if err != nil || !got.Equal(p) {
		t.Fatalf("got %v, %v", got, err)
	}
	if len(outcomes) != 2 || !errors.Is(outcomes[1].Err, context.DeadlineExceeded) {
		t.Fatalf("outcomes %+v, want the hanging backend timed out", outcomes)
	}

	// Nothing at all within the bound: a ResolveError.
	c = newTestClient(t, []Backend{&fakeBackend{name: "hangs", resolve: hang}}, WithMostRecentTimeout(50*time.Millisecond))
	_, err = c.ResolveMostRecent(testContext(t), sk.PublicKey())
	var re *ResolveError
	if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveErrors(t *testing.T) {
	sk := newSecretKey(t)
	unavailable := &fakeBackend{name: "down", resolve: failWith("down", ErrUnavailable)}
	notFound := &fakeBackend{name: "empty"}
	invalid := &fakeBackend{name: "junk", resolve: failWith("junk", ErrInvalidResponse)}
	ctx := testContext(t)

	c := newTestClient(t, []Backend{unavailable, notFound, invalid})
	got, err := c.Resolve(ctx, sk.PublicKey())
	var re *ResolveError
	if got != nil || !errors.As(err, &re) {
		t.Fatalf("got %v, %v; want a *ResolveError", got, err)
	}
	if re.Key != sk.PublicKey() || len(re.Outcomes) != 3 || re.Outcomes[1].Backend != "empty" {
		t.Fatalf("ResolveError %+v", re)
	}
	for _, want := range []error{ErrNotFound, ErrUnavailable, ErrInvalidResponse} {
		if !errors.Is(err, want) {
			t.Errorf("errors.Is(err, %v) = false", want)
		}
	}
	if !strings.Contains(err.Error(), sk.PublicKey().String()) || !strings.Contains(err.Error(), "down") {
		t.Errorf("message %q", err)
	}

	c = newTestClient(t, []Backend{unavailable, invalid})
	_, err = c.Resolve(ctx, sk.PublicKey())
	if errors.Is(err, ErrNotFound) {
		t.Error("ErrNotFound matched though no backend said not found")
	}
	var be *BackendError
	if !errors.As(err, &be) || be.Backend != "down" {
		t.Errorf("errors.As(*BackendError) = %+v", be)
	}

	// The caller's cancellation shows as such.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c = newTestClient(t, []Backend{&fakeBackend{name: "hangs", resolve: hang}})
	if _, err := c.Resolve(cctx, sk.PublicKey()); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestResolveStaleOnFailure(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "stale", 300)
	clock := clockwork.NewFakeClock()
	var fail atomic.Bool
	b := &fakeBackend{name: "b", resolve: func(ctx context.Context, q Query) (*SignedPacket, error) {
		if fail.Load() {
			return nil, &BackendError{Backend: "b", Op: opResolve, Status: 503, Err: ErrUnavailable}
		}
		return p, nil
	}}
	nf := &fakeBackend{name: "not found"}
	c := newTestClient(t, []Backend{b, nf}, WithClock(clock))
	ctx := testContext(t)
	if _, err := c.Resolve(ctx, sk.PublicKey()); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	clock.Advance(24 * time.Hour)
	got, err := c.Resolve(ctx, sk.PublicKey())
	if err != nil || !got.Equal(p) {
		t.Fatalf("stale fallback: %v, %v", got, err)
	}
	if b.resolves.Load() != 2 {
		t.Fatal("the network was not asked for an expired packet")
	}
	got, err = c.ResolveMostRecent(ctx, sk.PublicKey())
	if err != nil || !got.Equal(p) {
		t.Fatalf("ResolveMostRecent stale fallback: %v, %v", got, err)
	}
	// NetworkOnly wants a network answer: no stale fallback.
	got, err = c.Resolve(ctx, sk.PublicKey(), NetworkOnly())
	if got != nil || !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("NetworkOnly: %v, %v; want a ResolveError", got, err)
	}
}

func TestResolveCacheDisabled(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	b := &fakeBackend{name: "b", resolve: answer(p)}
	c := newTestClient(t, []Backend{b}, WithCacheSize(0))
	for range 3 {
		if _, err := c.Resolve(testContext(t), sk.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	if b.resolves.Load() != 3 {
		t.Fatalf("%d resolves, want 3 with the cache disabled", b.resolves.Load())
	}
	if q := b.lastQuery(); q.NewerThan != 0 {
		t.Errorf("NewerThan %v without a cache", q.NewerThan)
	}
}

func TestPublishThenResolveFromCache(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	relay := newMemRelay()
	r := newTestRelay(t, serveMemRelay(t, relay).URL)
	c := newTestClient(t, []Backend{r})
	ctx := testContext(t)
	if _, err := c.Publish(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve(ctx, sk.PublicKey())
	if err != nil || !got.Equal(p) {
		t.Fatalf("%v, %v", got, err)
	}
	if relay.gets.Load() != 0 {
		t.Fatalf("%d GETs: the published packet should be served from the cache", relay.gets.Load())
	}
	got, err = c.Resolve(ctx, sk.PublicKey(), NetworkOnly())
	if err != nil || !got.Equal(p) || relay.gets.Load() != 1 {
		t.Fatalf("%v, %v, %d GETs", got, err, relay.gets.Load())
	}
}

func TestClientLogger(t *testing.T) {
	sk := newSecretKey(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestClient(t, []Backend{&fakeBackend{name: "relay-x"}}, WithLogger(log))
	c.Resolve(testContext(t), sk.PublicKey())
	c.Publish(testContext(t), txtPacket(t, sk, testEpoch, "v", 300))
	mu.Lock()
	defer mu.Unlock()
	if s := buf.String(); !strings.Contains(s, "relay-x") || !strings.Contains(s, "op=resolve") || !strings.Contains(s, "op=publish") {
		t.Fatalf("log %q", s)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Many goroutines publishing and resolving through one Client, over real
// HTTP, under -race.
func TestClientConcurrency(t *testing.T) {
	relays := []*memRelay{newMemRelay(), newMemRelay(), newMemRelay()}
	var backends []Backend
	for _, m := range relays {
		backends = append(backends, newTestRelay(t, serveMemRelay(t, m).URL))
	}
	backends = append(backends, &fakeBackend{name: "flaky", resolve: failWith("flaky", ErrUnavailable)})
	c := newTestClient(t, backends, WithCacheSize(4), WithTTLClamp(0, 0))
	ctx := testContext(t)

	keys := make([]*SecretKey, 6)
	for i := range keys {
		keys[i] = newSecretKey(t)
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
				p := txtPacket(t, sk, testEpoch+Timestamp(i*workers+w), fmt.Sprint(w, "-", i), 60)
				if _, err := c.Publish(ctx, p); err != nil && !errors.Is(err, ErrNotMostRecent) {
					errs <- fmt.Errorf("publish: %w", err)
				}
				var got *SignedPacket
				var err error
				if i%3 == 0 {
					got, err = c.ResolveMostRecent(ctx, sk.PublicKey())
				} else {
					got, err = c.Resolve(ctx, sk.PublicKey(), NetworkOnly())
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
		var newest *SignedPacket
		for _, m := range relays {
			if p := m.get(sk.PublicKey()); p != nil && p.MoreRecentThan(newest) {
				newest = p
			}
		}
		if !got.Equal(newest) {
			t.Errorf("ResolveMostRecent %s, relays' newest %s", got, newest)
		}
	}
	if n := c.cache.len(); n > 4 {
		t.Errorf("cache holds %d packets, limit 4", n)
	}
}
