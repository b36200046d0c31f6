package pkarrclient

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// after returns a resolve function that answers p once release is closed,
// unless the call was cancelled by then: a backend the client stopped
// waiting for. p nil answers not found.
func after(release <-chan struct{}, p *SignedPacket) func(context.Context, Query) (*SignedPacket, error) {
	return func(ctx context.Context, _ Query) (*SignedPacket, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p == nil {
			return nil, &BackendError{Backend: "after", Op: OpResolve, Status: 404, Err: ErrNotFound}
		}
		return p, nil
	}
}

// sequence orders backends' answers: it returns an outcome callback, and a
// channel per name that closes once the outcome of the backend before it
// (names[i-1]) is in and has been acted on, which is when the client
// receives the next outcome. A backend that waits on the channel of a
// later name answers only if the client has not stopped waiting for it in
// between (see after): a deterministic test of when a resolve ends.
func sequence(names ...string) (func(Outcome), map[string]chan struct{}) {
	gates := make(map[string]chan struct{}, len(names))
	for _, n := range names {
		gates[n] = make(chan struct{})
	}
	var mu sync.Mutex
	return func(o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		for i, n := range names[:len(names)-1] {
			if o.Backend == n {
				select {
				case <-gates[names[i+1]]:
				default:
					close(gates[names[i+1]])
				}
			}
		}
	}, gates
}

func TestResolveSettleTakesTheMostRecent(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	ctx := testContext(t)

	// Without SettleWait the first valid answer ends the wait, as in pkarr.
	c := newTestClient(t, []Backend{
		&fakeBackend{name: "fast", resolve: answer(v1)},
		&fakeBackend{name: "slow", resolve: after(make(chan struct{}), v2)},
	})
	if got, err := c.Resolve(ctx, sk.PublicKey(), NetworkOnly()); err != nil || !got.Equal(v1) {
		t.Fatalf("without SettleWait: %s, %v; want the first answer v1", txtOf(got), err)
	}

	// With it, the slower backend's newer packet, answered after the
	// first, wins. A third backend's not-found answer comes between them,
	// so that if the first answer ended the wait, the slow backend's call
	// is surely cancelled by the time it would answer.
	onOutcome, gates := sequence("fast", "between", "slow")
	c = newTestClient(t, []Backend{
		&fakeBackend{name: "fast", resolve: answer(v1)},
		&fakeBackend{name: "between", resolve: after(gates["between"], nil)},
		&fakeBackend{name: "slow", resolve: after(gates["slow"], v2)},
	})
	if got, err := c.Resolve(ctx, sk.PublicKey(), NetworkOnly(), SettleWait(time.Minute), ReportOutcomes(onOutcome)); err != nil || !got.Equal(v2) {
		t.Fatalf("with SettleWait: %s, %v; want the most recent v2", txtOf(got), err)
	}

	// The window is a bound: a hanging backend is cancelled when it ends,
	// and the answers in by then decide.
	var outcomes []Outcome
	c = newTestClient(t, []Backend{
		&fakeBackend{name: "fast", resolve: answer(v1)},
		&fakeBackend{name: "hangs", resolve: hang},
	})
	got, err := c.Resolve(ctx, sk.PublicKey(), NetworkOnly(), SettleWait(20*time.Millisecond),
		ReportOutcomes(func(o Outcome) { outcomes = append(outcomes, o) }))
	if err != nil || !got.Equal(v1) {
		t.Fatalf("with a hanging backend: %s, %v", txtOf(got), err)
	}
	if len(outcomes) != 2 || !errors.Is(outcomes[1].Err, context.Canceled) {
		t.Fatalf("outcomes %+v, want the hanging backend cancelled", outcomes)
	}
}

func TestResolveDistrustsABackendThatGoesBack(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	clock := clockwork.NewFakeClock()
	ctx := testContext(t)
	onOutcome, gates := sequence("liar", "between", "honest")
	liar := &fakeBackend{name: "liar", resolve: answer(v1)}
	between := &fakeBackend{name: "between", resolve: after(gates["between"], nil)}
	honest := &fakeBackend{name: "honest", resolve: after(gates["honest"], v2)}
	// No cache: what is returned is what the backends answered.
	c := newTestClient(t, []Backend{liar, between, honest}, WithCacheSize(0), WithClock(clock))
	if _, err := c.Publish(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if d := c.Distrusted(); len(d) != 0 {
		t.Fatalf("distrusted %v before any answer", d)
	}
	// The liar accepted v2 and serves v1: its answer no longer ends the
	// wait, although it came first.
	var outcomes []Outcome
	got, err := c.Resolve(ctx, sk.PublicKey(), ReportOutcomes(func(o Outcome) {
		outcomes = append(outcomes, o)
		onOutcome(o)
	}))
	if err != nil || !got.Equal(v2) {
		t.Fatalf("got %s, %v; want the honest v2", txtOf(got), err)
	}
	if d := c.Distrusted(); !slices.Equal(d, []string{"liar"}) {
		t.Fatalf("distrusted %v, want [liar]", d)
	}
	for _, o := range outcomes {
		if o.Distrusted != (o.Backend == "liar") {
			t.Errorf("outcome of %s: Distrusted %v", o.Backend, o.Distrusted)
		}
	}

	// Distrust lasts: the honest backend answers only after the liar, yet
	// still wins, on a key the liar never lied about.
	sk2 := newSecretKey(t)
	w1 := txtPacket(t, sk2, testEpoch, "w1", 300)
	w2 := txtPacket(t, sk2, testEpoch+1, "w2", 300)
	onOutcome, gates = sequence("liar", "between", "honest")
	liar.resolve, between.resolve, honest.resolve = answer(w1), after(gates["between"], nil), after(gates["honest"], w2)
	if got, err := c.Resolve(ctx, sk2.PublicKey(), ReportOutcomes(onOutcome)); err != nil || !got.Equal(w2) {
		t.Fatalf("while distrusted: %s, %v; want w2", txtOf(got), err)
	}

	// Until the distrust period has passed.
	clock.Advance(defaultDistrust + time.Second)
	if d := c.Distrusted(); len(d) != 0 {
		t.Fatalf("distrusted %v after the period", d)
	}
	onOutcome, gates = sequence("liar", "between", "honest")
	between.resolve, honest.resolve = after(gates["between"], nil), after(gates["honest"], w2)
	if got, err := c.Resolve(ctx, sk2.PublicKey(), ReportOutcomes(onOutcome)); err != nil || !got.Equal(w1) {
		t.Fatalf("after the period: %s, %v; want the first answer w1 again", txtOf(got), err)
	}

	// A backend that refused v2 and serves v1 kept its word.
	refused := &fakeBackend{name: "refused", resolve: answer(v1),
		publish: func(context.Context, *SignedPacket) (PublishReceipt, error) {
			return PublishReceipt{}, &BackendError{Backend: "refused", Op: OpPublish, Err: ErrUnavailable}
		}}
	c = newTestClient(t, []Backend{refused, honest}, WithCacheSize(0))
	honest.resolve = answer(v2)
	if _, err := c.Publish(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveMostRecent(ctx, sk.PublicKey()); err != nil || len(c.Distrusted()) != 0 {
		t.Fatalf("a backend that refused the newer packet: %v, distrusted %v", err, c.Distrusted())
	}

	// WithDistrustTTL(0) turns the check off.
	liar.resolve, honest.resolve = answer(v1), after(make(chan struct{}), v2)
	c = newTestClient(t, []Backend{liar, honest}, WithCacheSize(0), WithDistrustTTL(0))
	if _, err := c.Publish(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Resolve(ctx, sk.PublicKey()); !got.Equal(v1) || len(c.Distrusted()) != 0 {
		t.Fatalf("WithDistrustTTL(0): got %s, distrusted %v", txtOf(got), c.Distrusted())
	}
	if _, err := NewClient([]Backend{liar}, WithDistrustTTL(-time.Second)); err == nil {
		t.Fatal("a negative distrust period was accepted")
	}
}

func TestResolveUncachedIgnoresTheCache(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	ctx := testContext(t)
	// The backend accepts v2 and keeps serving v1: without the distrust
	// check, only ignoring the cache tells.
	b := &fakeBackend{name: "b", resolve: answer(v1)}
	c := newTestClient(t, []Backend{b}, WithClock(clockwork.NewFakeClock()), WithDistrustTTL(0))
	if _, err := c.Publish(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Resolve(ctx, sk.PublicKey(), NetworkOnly()); !got.Equal(v2) {
		t.Fatalf("NetworkOnly: %s, want the newer cached v2", txtOf(got))
	}
	got, err := c.Resolve(ctx, sk.PublicKey(), Uncached())
	if err != nil || !got.Equal(v1) {
		t.Fatalf("Uncached: %s, %v; want what the network holds, v1", txtOf(got), err)
	}
	if q := b.lastQuery(); !q.Fresh || q.NewerThan != 0 {
		t.Errorf("Uncached query %+v, want Fresh and no NewerThan", q)
	}
	// Nothing on the network: an error, not the cached packet.
	b.resolve = nil
	if got, err := c.Resolve(ctx, sk.PublicKey(), Uncached()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Uncached with nothing on the network: %s, %v; want ErrNotFound", txtOf(got), err)
	}
}

// mayServeOlder is a backend that says it may serve older packets, as the
// DHT does.
type mayServeOlder struct{ *fakeBackend }

func (mayServeOlder) MayServeOlder() bool { return true }

func TestResolveNeverDistrustsABackendThatMayServeOlder(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	ctx := testContext(t)
	dht := mayServeOlder{&fakeBackend{name: "dht", resolve: answer(v1)}}
	c := newTestClient(t, []Backend{dht}, WithCacheSize(0))
	if _, err := c.Publish(ctx, v2); err != nil {
		t.Fatal(err)
	}
	var outcome Outcome
	if _, err := c.Resolve(ctx, sk.PublicKey(), ReportOutcomes(func(o Outcome) { outcome = o })); err != nil {
		t.Fatal(err)
	}
	if d := c.Distrusted(); len(d) != 0 || outcome.Distrusted {
		t.Fatalf("a backend that may serve older packets was distrusted: %v", d)
	}
}
