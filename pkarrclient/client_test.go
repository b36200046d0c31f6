package pkarrclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
		return nil, &BackendError{Backend: f.name, Op: OpResolve, Status: 404, Err: ErrNotFound}
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
		return nil, &BackendError{Backend: name, Op: OpResolve, Err: err}
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
			return PublishReceipt{DHTNodes: 99}, &BackendError{Backend: "conflict", Op: OpPublish, Status: 409, Err: ErrNotMostRecent}
		}},
		&fakeBackend{name: "limited", publish: func(context.Context, *SignedPacket) (PublishReceipt, error) {
			return PublishReceipt{}, &BackendError{Backend: "limited", Op: OpPublish, Status: 429, Err: &RateLimitError{RetryAfter: 7 * time.Second}}
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
	got, err := c.Resolve(testContext(t), sk.PublicKey(), ReportOutcomes(onOutcome))
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
	got, err := c.ResolveMostRecent(testContext(t), sk.PublicKey(), ReportOutcomes(func(o Outcome) { outcomes = append(outcomes, o) }))
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
			return nil, &BackendError{Backend: "b", Op: OpResolve, Status: 503, Err: ErrUnavailable}
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
