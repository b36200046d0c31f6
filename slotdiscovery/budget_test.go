package slotdiscovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// utStart is the fake clocks' start in the unit tests of the split types.
var utStart = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// utBudget is a budget on a fake clock: fast GETs at 10/s with a burst of
// 10, PUTs at 1/s with a burst of 1.
func utBudget() (*budget, *clockwork.FakeClock) {
	clock := clockwork.NewFakeClockAt(utStart)
	return newBudget(clock, 1000, 1000, 10, 10, 1, 1), clock
}

// utResult is what a take started in the background returns.
type utResult struct {
	waited bool
	err    error
}

// utTake starts takeWaited on lim in the background, and waits until it
// either returned or sleeps on the fake clock.
func utTake(t *testing.T, ctx context.Context, b *budget, clock *clockwork.FakeClock, lim *rate.Limiter) <-chan utResult {
	t.Helper()
	out := make(chan utResult, 1)
	go func() {
		w, err := b.takeWaited(ctx, lim)
		out <- utResult{w, err}
	}()
	// Generous: only a broken take would make this wait at all.
	bctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	blocked := make(chan error, 1)
	go func() { blocked <- clock.BlockUntilContext(bctx, 1) }()
	select {
	case r := <-out:
		cancel()
		out <- r
	case err := <-blocked:
		if err != nil {
			t.Fatal("take neither returned nor waited on the clock within 10 s")
		}
	}
	return out
}

// utNow reports whether a background take, started by utTake, returned
// without waiting on the clock.
func utNow(c <-chan utResult) (utResult, bool) {
	select {
	case r := <-c:
		return r, true
	default:
		return utResult{}, false
	}
}

// utDone reports whether a background take has returned, and its result.
// Only for takes that must not have returned: one woken by the clock
// returns in its own goroutine, so it is given 50 ms to show it did (a
// correct take is never failed by this wait).
func utDone(t *testing.T, c <-chan utResult) (utResult, bool) {
	t.Helper()
	select {
	case r := <-c:
		return r, true
	case <-time.After(50 * time.Millisecond):
		return utResult{}, false
	}
}

// utMustDone waits (generously) for a background take that must return.
func utMustDone(t *testing.T, c <-chan utResult, what string) utResult {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: take did not return", what)
		return utResult{}
	}
}

func TestBudgetStartsAtTheConfiguredPace(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utStart)
	b := newBudget(clock, 1000, 1000, 5, 7, 0.5, 3)
	for _, c := range []struct {
		name  string
		lim   *rate.Limiter
		limit rate.Limit
		burst int
	}{
		{"gets", b.gets, 5, 7},
		// Two reads per write: the one before it and the read-back.
		{"ownGets", b.ownGets, 1, 6},
		{"puts", b.puts, 0.5, 3},
	} {
		if c.lim.Limit() != c.limit || c.lim.Burst() != c.burst {
			t.Errorf("%s: %v/s burst %d, want %v/s burst %d", c.name, c.lim.Limit(), c.lim.Burst(), c.limit, c.burst)
		}
	}
	if b.burstCap != 7 {
		t.Errorf("burst cap %d, want the configured burst 7", b.burstCap)
	}
	if p := b.paused(utStart); p > 0 {
		t.Errorf("a new budget is paused for %v", p)
	}
}

// TestTakeWithinTheBurst: tokens within the burst are taken at once, and
// takeWaited says so.
func TestBudgetTakeWithinTheBurst(t *testing.T) {
	b, clock := utBudget()
	for n := range 10 {
		waited, err := b.takeWaited(t.Context(), b.gets)
		if err != nil || waited {
			t.Fatalf("GET %d of a burst of 10: waited=%v err=%v", n+1, waited, err)
		}
	}
	if !clock.Now().Equal(utStart) {
		t.Fatalf("the clock moved")
	}
}

// TestTakeWaitsForTheToken: past the burst, a take waits exactly until the
// rate gives a token, and takeWaited says it waited.
func TestBudgetTakeWaitsForTheToken(t *testing.T) {
	b, clock := utBudget()
	if err := b.take(t.Context(), b.puts); err != nil {
		t.Fatal(err)
	}
	c := utTake(t, t.Context(), b, clock, b.puts)
	clock.Advance(time.Second - time.Nanosecond)
	if _, done := utDone(t, c); done {
		t.Fatal("the second PUT at 1/s was taken before a second passed")
	}
	clock.Advance(time.Nanosecond)
	if r := utMustDone(t, c, "a second later"); r.err != nil || !r.waited {
		t.Fatalf("the second PUT: waited=%v err=%v, want waited", r.waited, r.err)
	}
}

// TestTakeCancelledReturnsTheToken: a take whose ctx ends while it waits
// for a token returns the ctx's error and gives its reservation back, so
// the next take is not delayed by a token nobody used.
func TestBudgetTakeCancelledReturnsTheToken(t *testing.T) {
	b, clock := utBudget()
	if err := b.take(t.Context(), b.puts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	c := utTake(t, ctx, b, clock, b.puts)
	cancel()
	if r := utMustDone(t, c, "cancelled"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("a cancelled take: %v, want context.Canceled", r.err)
	}
	clock.Advance(time.Second)
	c = utTake(t, t.Context(), b, clock, b.puts)
	r, done := utNow(c)
	if !done || r.err != nil || r.waited {
		t.Fatalf("a second after a cancelled take: done=%v waited=%v err=%v, want the token at once", done, r.waited, r.err)
	}
}

// TestTakeBurstBelowOne: a limiter that can never give a token is an
// error, not a wait for ever.
func TestBudgetTakeBurstBelowOne(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utStart)
	b := newBudget(clock, 1000, 1000, 1, 0, 1, 1)
	if err := b.take(t.Context(), b.gets); err == nil {
		t.Fatal("a take from a limiter with burst 0 succeeded")
	}
}

// utLimited is a 429 from one backend with the given Retry-After.
func utLimited(after time.Duration) error {
	return &pkarrclient.BackendError{Backend: "relay", Op: "resolve", Status: 429, Err: &pkarrclient.RateLimitError{RetryAfter: after}}
}

// utResolveErr is a fan-out read error with one outcome per error.
func utResolveErr(errs ...error) error {
	re := &pkarrclient.ResolveError{}
	for i, err := range errs {
		re.Outcomes = append(re.Outcomes, pkarrclient.Outcome{Backend: fmt.Sprint("r", i), Err: err})
	}
	return re
}

func TestBudgetAllRateLimited(t *testing.T) {
	other := errors.New("relay down")
	pub := func(errs ...error) error {
		pe := &pkarrclient.PublishError{}
		for _, err := range errs {
			pe.Outcomes = append(pe.Outcomes, pkarrclient.Outcome{Err: err})
		}
		return pe
	}
	for _, c := range []struct {
		name string
		err  error
		wait time.Duration
		all  bool
	}{
		{"one backend, 429", utLimited(3 * time.Second), 3 * time.Second, true},
		{"one backend, 429 wrapped", fmt.Errorf("read: %w", utLimited(time.Second)), time.Second, true},
		{"one backend, other error", other, 0, false},
		{"every relay 429, the shortest wait", utResolveErr(utLimited(3*time.Second), utLimited(2*time.Second), utLimited(4*time.Second)), 2 * time.Second, true},
		{"the shortest first", utResolveErr(utLimited(time.Second), utLimited(2*time.Second)), time.Second, true},
		{"one relay 429, one down", utResolveErr(utLimited(3*time.Second), other), 3 * time.Second, false},
		{"one relay 429, one answered", utResolveErr(nil, utLimited(3*time.Second)), 3 * time.Second, false},
		{"no relay 429", utResolveErr(other, other), 0, false},
		{"no outcome", utResolveErr(), 0, false},
		{"every relay 429 to a PUT", pub(utLimited(5*time.Second), utLimited(6*time.Second)), 5 * time.Second, true},
		{"one relay 429 to a PUT", pub(utLimited(5*time.Second), nil), 5 * time.Second, false},
		{"every relay 429 without Retry-After", utResolveErr(utLimited(0), utLimited(0)), 0, true},
		{"one without Retry-After first", utResolveErr(utLimited(0), utLimited(2*time.Second)), 0, true},
	} {
		wait, all := allRateLimited(c.err)
		if wait != c.wait || all != c.all {
			t.Errorf("%s: (%v, %v), want (%v, %v)", c.name, wait, all, c.wait, c.all)
		}
	}
}

// TestBackoffIgnoresOtherErrors: an error that is not a 429 changes
// nothing.
func TestBudgetBackoffIgnoresOtherErrors(t *testing.T) {
	b, _ := utBudget()
	for _, err := range []error{errors.New("down"), utResolveErr(errors.New("down")), pkarrclient.ErrNotFound} {
		if b.backoff(utStart, err) {
			t.Errorf("%v counted as a 429", err)
		}
	}
	if b.burstCap != 10 || b.gets.Burst() != 10 || b.paused(utStart) > 0 {
		t.Errorf("after other errors: burst cap %d, burst %d, paused %v", b.burstCap, b.gets.Burst(), b.paused(utStart))
	}
}

// TestBackoffCapsTheBurst: one 429, even from one relay of several,
// lowers the GET burst to limitedBurst for good, fast phase or not, and
// pauses nothing.
func TestBudgetBackoffCapsTheBurst(t *testing.T) {
	b, _ := utBudget()
	if !b.backoff(utStart, utResolveErr(utLimited(time.Minute), nil)) {
		t.Fatal("a 429 from one relay was not counted")
	}
	if b.gets.Burst() != limitedBurst || b.burstCap != limitedBurst {
		t.Errorf("after a 429: burst %d, cap %d, want %d", b.gets.Burst(), b.burstCap, limitedBurst)
	}
	if p := b.paused(utStart); p > 0 {
		t.Errorf("a 429 from one relay of two paused every request for %v", p)
	}
	b.fast(utStart, false)
	if b.gets.Burst() != limitedBurst || b.gets.Limit() != 10 {
		t.Errorf("the fast pace after a 429: %v/s burst %d, want 10/s burst %d", b.gets.Limit(), b.gets.Burst(), limitedBurst)
	}
	// A burst already below the cap stays.
	b.steady(utStart, 0.5)
	b.backoff(utStart, utLimited(0))
	if b.gets.Burst() != steadyBurst {
		t.Errorf("a 429 in the steady pace set the burst to %d, want %d", b.gets.Burst(), steadyBurst)
	}
}

// TestBackoffBelowTheCapKeepsTheBurst: a configured burst below
// limitedBurst is not raised by a 429.
func TestBudgetBackoffBelowTheCapKeepsTheBurst(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utStart)
	b := newBudget(clock, 1000, 1000, 10, 3, 1, 1)
	b.backoff(utStart, utLimited(0))
	b.fast(utStart, false)
	if b.gets.Burst() != 3 {
		t.Errorf("burst %d after a 429, want the configured 3", b.gets.Burst())
	}
}

// TestRateLimitPause: when every relay answered 429, every request waits
// for the first of them to take requests again (at least a second), and a
// shorter pause never cuts a longer one short.
func TestBudgetRateLimitPause(t *testing.T) {
	for _, c := range []struct {
		name  string
		after time.Duration
		pause time.Duration
	}{
		{"Retry-After 3 s", 3 * time.Second, 3 * time.Second},
		{"no Retry-After", 0, time.Second},
		{"Retry-After under a second", 500 * time.Millisecond, time.Second},
		{"Retry-After 1 s", time.Second, time.Second},
	} {
		b, _ := utBudget()
		b.backoff(utStart, utResolveErr(utLimited(c.after), utLimited(c.after+time.Minute)))
		if p := b.paused(utStart); p != c.pause {
			t.Errorf("%s: paused %v, want %v", c.name, p, c.pause)
		}
	}
	b, _ := utBudget()
	b.backoff(utStart, utLimited(10*time.Second))
	b.backoff(utStart.Add(time.Second), utLimited(2*time.Second))
	if p := b.paused(utStart); p != 10*time.Second {
		t.Errorf("a 2 s pause after a 10 s one: paused %v, want 10 s", p)
	}
	b.backoff(utStart.Add(5*time.Second), utLimited(7*time.Second))
	if p := b.paused(utStart); p != 12*time.Second {
		t.Errorf("a 7 s pause 5 s into a 10 s one: paused %v, want 12 s from the start", p)
	}
}

// TestTakeWaitsOutThePause: during a pause no token is taken, however
// many the limiter has; at its end the take goes through.
func TestBudgetTakeWaitsOutThePause(t *testing.T) {
	b, clock := utBudget()
	b.backoff(utStart, utLimited(3*time.Second))
	c := utTake(t, t.Context(), b, clock, b.gets)
	clock.Advance(3*time.Second - time.Nanosecond)
	if _, done := utDone(t, c); done {
		t.Fatal("a GET was taken during the pause")
	}
	clock.Advance(time.Nanosecond)
	if r := utMustDone(t, c, "at the pause's end"); r.err != nil || !r.waited {
		t.Fatalf("at the pause's end: waited=%v err=%v", r.waited, r.err)
	}
	// A pause that ends exactly now holds nothing up.
	b.backoff(clock.Now(), utLimited(time.Second))
	clock.Advance(time.Second)
	c = utTake(t, t.Context(), b, clock, b.gets)
	if r, done := utNow(c); !done || r.waited || r.err != nil {
		t.Fatalf("a take as the pause ends: done=%v waited=%v err=%v, want at once", done, r.waited, r.err)
	}
}

// TestTakeCancelledDuringThePause: a take whose ctx ends during a pause
// returns the ctx's error.
func TestBudgetTakeCancelledDuringThePause(t *testing.T) {
	b, clock := utBudget()
	b.backoff(utStart, utLimited(time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	c := utTake(t, ctx, b, clock, b.gets)
	cancel()
	if r := utMustDone(t, c, "cancelled"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("a take cancelled during the pause: %v", r.err)
	}
	if n := b.gets.TokensAt(clock.Now()); n < limitedBurst {
		t.Errorf("a take cancelled during the pause spent a token: %v left", n)
	}
}

// TestBudgetPace: the fast pace is the fast rate and the configured burst;
// the steady pace is the given rate and a burst of steadyBurst, or less
// if so configured.
func TestBudgetPace(t *testing.T) {
	b, _ := utBudget()
	b.steady(utStart, 0.25)
	if b.gets.Limit() != 0.25 || b.gets.Burst() != steadyBurst {
		t.Errorf("steady: %v/s burst %d, want 0.25/s burst %d", b.gets.Limit(), b.gets.Burst(), steadyBurst)
	}
	b.fast(utStart, false)
	if b.gets.Limit() != 10 || b.gets.Burst() != 10 {
		t.Errorf("fast: %v/s burst %d, want 10/s burst 10", b.gets.Limit(), b.gets.Burst())
	}
	one := newBudget(clockwork.NewFakeClockAt(utStart), 1000, 1000, 10, 1, 1, 1)
	one.steady(utStart, 0.25)
	if one.gets.Burst() != 1 {
		t.Errorf("steady with a configured burst of 1: burst %d", one.gets.Burst())
	}
}

func TestBudgetSleep(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utStart)
	if err := sleep(t.Context(), clock, 0); err != nil {
		t.Errorf("sleep 0: %v", err)
	}
	if err := sleep(t.Context(), clock, -time.Second); err != nil {
		t.Errorf("sleep -1 s: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sleep(ctx, clock, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep 0 on an ended ctx: %v, want context.Canceled", err)
	}
	if err := sleep(ctx, clock, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep 1 h on an ended ctx: %v, want context.Canceled", err)
	}
	done := make(chan error, 1)
	go func() { done <- sleep(t.Context(), clock, time.Second) }()
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Errorf("sleep 1 s: %v", err)
	}
}

// TestBudgetFastWhileClaimingOnly: after its fast phase, a peer that scans
// fast only because it is still claiming reads at claimGetRate, not at the
// full fast rate: a re-claim in a large group must not show in the steady
// budget at the fast phase's pace.
func TestBudgetFastWhileClaimingOnly(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utStart)
	b := newBudget(clock, 1000, 1000, 1.9, 8, 1, 1)
	b.fast(utStart, true)
	if got := float64(b.gets.Limit()); got != claimGetRate {
		t.Errorf("claiming only: GET rate %v, want %v", got, claimGetRate)
	}
	b.fast(utStart, false)
	if got := float64(b.gets.Limit()); got != 1.9 {
		t.Errorf("fast phase: GET rate %v, want the fast rate 1.9", got)
	}
	slow := newBudget(clock, 1000, 1000, 0.5, 8, 1, 1)
	slow.fast(utStart, true)
	if got := float64(slow.gets.Limit()); got != 0.5 {
		t.Errorf("claiming only with a fast rate under the cap: %v, want 0.5", got)
	}
}

// TestPaceAfterTheFastPhase: the scan loop's pace. In the fast phase
// scans read at the fast rate; past it, an announcement still claiming
// keeps them fast but at claimGetRate; with none claiming, the steady
// rate.
func TestPaceAfterTheFastPhase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithGetBudget(0.2, 1.9, 8))
		d := h.d
		d.mu.Lock()
		defer d.mu.Unlock()
		now := d.now()
		d.scanner.fastUntil = now.Add(time.Minute)
		if !d.pace(now) || float64(d.budget.gets.Limit()) != 1.9 {
			t.Errorf("fast phase: fast %v at %v/s, want fast at 1.9/s", d.scanner.fast(now, nil), d.budget.gets.Limit())
		}
		d.scanner.fastUntil = now.Add(-time.Second)
		d.anns["claimer"] = &announcement{claiming: now.Add(-time.Second), slot: -1, held: -1}
		if !d.pace(now) || float64(d.budget.gets.Limit()) != claimGetRate {
			t.Errorf("claiming past the fast phase: %v/s, want fast at %v/s", d.budget.gets.Limit(), claimGetRate)
		}
		delete(d.anns, "claimer")
		if d.pace(now) || float64(d.budget.gets.Limit()) >= claimGetRate {
			t.Errorf("steady: %v/s, want the steady rate", d.budget.gets.Limit())
		}
	})
}

// TestBudgetTakeWithinTheBurstRealClock: on a real clock, which moves
// while a take runs, a token within the burst is still not reported as
// waited for (a write would otherwise read its slot twice).
func TestBudgetTakeWithinTheBurstRealClock(t *testing.T) {
	b := newBudget(clockwork.NewRealClock(), 10, 10, 1, 10, 1, 2)
	for n := range 2 {
		if waited, err := b.takeWaited(t.Context(), b.puts); err != nil || waited {
			t.Fatalf("PUT %d of a burst of 2: waited=%v err=%v", n+1, waited, err)
		}
	}
}

// TestBudgetTakeSpendsNoTokenWhileItWaits: a PUT whose shared token is a
// second away counts its PUT token as spent when it goes, not when it
// began to wait: two PUTs at 1 per 2 s are 2 s apart however long the
// first waited (here 1 s, and the second at 3 s, not 2 s).
func TestBudgetTakeSpendsNoTokenWhileItWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudget(clockwork.NewRealClock(), 1, 1, 10, 10, 0.5, 1)
		t0 := time.Now()
		if err := b.take(t.Context(), b.gets); err != nil { // the shared token
			t.Fatal(err)
		}
		var at []time.Duration
		for range 2 {
			if err := b.take(t.Context(), b.puts); err != nil {
				t.Fatal(err)
			}
			at = append(at, time.Since(t0))
		}
		if want := []time.Duration{time.Second, 3 * time.Second}; !slices.Equal(at, want) {
			t.Errorf("PUTs at %v, want %v", at, want)
		}
	})
}

// TestBudgetAffords: n GETs are affordable at once while both the GET
// limiter and the shared one hold n tokens, and not during a 429 pause.
func TestBudgetAffords(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utStart)
	// GETs: burst 10; every request: burst 6.
	b := newBudget(clock, 1, 6, 10, 10, 1, 1)
	now := clock.Now()
	if !b.affords(now, 6) || b.affords(now, 7) {
		t.Errorf("shared burst 6: affords 6 %v, 7 %v; want true, false", b.affords(now, 6), b.affords(now, 7))
	}
	b = newBudget(clock, 1000, 1000, 10, 4, 1, 1)
	if !b.affords(now, 4) || b.affords(now, 5) {
		t.Errorf("GET burst 4: affords 4 %v, 5 %v; want true, false", b.affords(now, 4), b.affords(now, 5))
	}
	b.mu.Lock()
	b.pausedTil = now.Add(time.Second)
	b.mu.Unlock()
	if b.affords(now, 1) {
		t.Error("affords a GET during a 429 pause")
	}
	if !b.affords(now.Add(time.Second), 1) {
		t.Error("does not afford a GET once the pause is over")
	}
}
