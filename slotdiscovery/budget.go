package slotdiscovery

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
)

const (
	// steadyBurst is the GET burst after the fast phase.
	steadyBurst = 2
	// limitedBurst caps the fast GET burst once a relay has answered 429:
	// with the default bursts of the reads around writes (4) and of PUTs
	// (2) it stays within one bucket of 10 for every request, pkarr's
	// relay's limit.
	limitedBurst = 4
)

// budget is a peer's request budget: the GET and PUT rate limiters and
// the pause every request keeps while all relays answer 429. The budget
// is the peer's promise to the relays: it is never exceeded, so a
// well-behaved peer earns no 429 from a relay with the deployed limits.
//
// Its own mutex guards pausedTil and burstCap, and orders the changes to
// the GET limiter's pace. It is a leaf: no method calls out while holding
// it, so a caller may hold the Discoverer's lock around any method but
// take, which sleeps. Taking tokens needs no lock: the limiters lock
// themselves.
type budget struct {
	clock clockwork.Clock

	gets    *rate.Limiter // scans and claims
	ownGets *rate.Limiter // the read before each write, kept apart so scans cannot starve it
	puts    *rate.Limiter
	// all is every request, whatever its kind: pkarr-relay limits all of
	// a client's requests in one bucket, and the kinds' own bursts add up
	// to more than it holds.
	all *rate.Limiter

	fastGetRate float64 // the fast-phase GET rate
	getBurst    int     // the configured GET burst

	mu        sync.Mutex
	pausedTil time.Time // set when every relay answered 429, to the first Retry-After
	burstCap  int       // the GET burst allowed, lowered by a 429
}

// newBudget starts a budget at the fast pace: getBurst GETs at once, then
// fastGetRate a second for scans and claims; putRate PUTs a second with a
// burst of putBurst, and two reads per PUT (the one before it and the
// read-back) on a budget of their own.
func newBudget(clock clockwork.Clock, reqRate float64, reqBurst int, fastGetRate float64, getBurst int, putRate float64, putBurst int) *budget {
	return &budget{
		clock:       clock,
		all:         rate.NewLimiter(rate.Limit(reqRate), reqBurst),
		gets:        rate.NewLimiter(rate.Limit(fastGetRate), getBurst),
		ownGets:     rate.NewLimiter(rate.Limit(2*putRate), 2*putBurst),
		puts:        rate.NewLimiter(rate.Limit(putRate), putBurst),
		fastGetRate: fastGetRate,
		getBurst:    getBurst,
		burstCap:    getBurst,
	}
}

// paused returns how long the 429 pause still holds at now (zero or less:
// none).
func (b *budget) paused(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pausedTil.Sub(now)
}

// take waits for a token from lim, and for any 429 pause to pass.
func (b *budget) take(ctx context.Context, lim *rate.Limiter) error {
	_, err := b.takeWaited(ctx, lim)
	return err
}

// takeWaited is take, and reports whether the token had to be waited for:
// whether a pause or the limiters made it sleep, not whether the clock
// moved meanwhile (a real one always has, by the time the call returns).
//
// The shared token is reserved first and the kind's at the moment that
// one comes: a PUT token counted as spent while the request waits a second
// for its shared token would let the next PUT, taken on time, reach the
// relay closer to it than the relay's limit allows.
func (b *budget) takeWaited(ctx context.Context, lim *rate.Limiter) (waited bool, err error) {
	for {
		pause := b.paused(b.clock.Now())
		if pause <= 0 {
			break
		}
		waited = true
		if err := sleep(ctx, b.clock, pause); err != nil {
			return waited, err
		}
	}
	if lim == b.gets {
		w, err := b.awaitToken(ctx)
		waited = waited || w
		if err != nil {
			return waited, err
		}
	}
	now := b.clock.Now()
	// Every request also takes a token of the budget all kinds share.
	ra := b.all.ReserveN(now, 1)
	if !ra.OK() {
		return waited, errors.New("slotdiscovery: request budget burst below one")
	}
	r := lim.ReserveN(now.Add(ra.DelayFrom(now)), 1)
	if !r.OK() {
		ra.CancelAt(now)
		return waited, errors.New("slotdiscovery: budget burst below one")
	}
	delay := max(r.DelayFrom(now), ra.DelayFrom(now))
	if err := sleep(ctx, b.clock, delay); err != nil {
		r.CancelAt(b.clock.Now())
		ra.CancelAt(b.clock.Now())
		return true, err
	}
	return waited || delay > 0, nil
}

// awaitToken waits, without reserving anything, until a GET of scans and
// claims has its tokens at hand: then the reservation that follows has
// no delay. The reads around our own writes (and the writes) reserve
// their tokens ahead, so they go first: a scan that held reservations
// while it waited would queue our claim's read, PUT and read-back behind
// it, half a second each at the paced rate, and in a group of fifty
// those scans run the whole time the late claims do. It reports whether
// it waited.
func (b *budget) awaitToken(ctx context.Context) (bool, error) {
	waited := false
	for {
		now := b.clock.Now()
		d := max(untilToken(b.all, now), untilToken(b.gets, now))
		if d <= 0 {
			return waited, nil
		}
		waited = true
		if err := sleep(ctx, b.clock, d); err != nil {
			return true, err
		}
	}
}

// untilToken returns how long lim takes from now to hold one token: zero
// when it holds one (or never can), and a second when its rate is zero
// (an unlikely setting, rechecked rather than waited on forever).
func untilToken(lim *rate.Limiter, now time.Time) time.Duration {
	tokens := lim.TokensAt(now)
	if tokens >= 1 || lim.Limit() == rate.Inf || lim.Burst() < 1 {
		return 0 // a burst below one never holds a token: the reservation says so
	}
	if lim.Limit() <= 0 {
		return time.Second
	}
	// Rounded up, so the wake finds the token there.
	return time.Duration(math.Ceil((1 - tokens) / float64(lim.Limit()) * float64(time.Second)))
}

// affords reports whether n GETs of scans and claims can go at now
// without waiting for a token or a pause.
func (b *budget) affords(now time.Time, n int) bool {
	if b.paused(now) > 0 {
		return false
	}
	return b.gets.TokensAt(now) >= float64(n) && b.all.TokensAt(now) >= float64(n)
}

// backoff reacts to a request error at now, and reports whether it was a
// 429. A 429 caps the GET burst from then on: n0's relay limits only
// PUTs, pkarr's limits every request in one bucket of 10; the full
// fast-phase burst finds a group sooner on the first, and a relay that
// answers 429 has said it is the second. Each relay keeps away from
// itself for its own Retry-After (pkarrclient's Relay refuses calls until
// then without sending them), so the others go on; only when every relay
// said 429 does every request pause, until the first of them takes
// requests again.
func (b *budget) backoff(now time.Time, err error) bool {
	var rl *pkarrclient.RateLimitError
	if !errors.As(err, &rl) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.burstCap > limitedBurst {
		b.burstCap = limitedBurst
		b.gets.SetBurstAt(now, min(b.gets.Burst(), limitedBurst))
	}
	wait, all := allRateLimited(err)
	if !all {
		return true
	}
	if until := now.Add(max(wait, time.Second)); until.After(b.pausedTil) {
		b.pausedTil = until
	}
	return true
}

// claimGetRate caps the GET rate of a peer that scans fast only because
// it is still claiming, after its fast phase: its claim's reads ride on
// the scan budget, and in a group of hundreds a peer may lose its slot
// and claim again in steady state, where the full fast rate would show
// in its long-run rate.
const claimGetRate = 1.2

// fast sets the GET budget to the fast pace at now: the fast rate (capped
// at claimGetRate when claiming is the only reason), and the configured
// burst unless a 429 lowered it.
func (b *budget) fast(now time.Time, claimingOnly bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.fastGetRate
	if claimingOnly {
		r = min(r, claimGetRate)
	}
	b.gets.SetLimitAt(now, rate.Limit(r))
	b.gets.SetBurstAt(now, min(b.getBurst, b.burstCap))
}

// steady sets the GET budget to the steady pace at now: perSecond, and a
// small burst. In steady state a scan is paced by the rate anyway; a
// small burst keeps any window of the run, not only the long run, within
// the steady budget.
func (b *budget) steady(now time.Time, perSecond float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gets.SetLimitAt(now, rate.Limit(perSecond))
	b.gets.SetBurstAt(now, min(b.getBurst, steadyBurst))
}

// allRateLimited reports whether every backend of a failed call answered
// 429, and the shortest wait among those that did.
func allRateLimited(err error) (time.Duration, bool) {
	var outcomes []pkarrclient.Outcome
	var re *pkarrclient.ResolveError
	var pe *pkarrclient.PublishError
	switch {
	case errors.As(err, &re):
		outcomes = re.Outcomes
	case errors.As(err, &pe):
		outcomes = pe.Outcomes
	default: // not a fan-out error: the one backend there is
		var rl *pkarrclient.RateLimitError
		if !errors.As(err, &rl) {
			return 0, false
		}
		return rl.RetryAfter, true
	}
	wait, limited := time.Duration(-1), 0
	for _, o := range outcomes {
		var rl *pkarrclient.RateLimitError
		if !errors.As(o.Err, &rl) {
			continue
		}
		limited++
		if wait < 0 || rl.RetryAfter < wait {
			wait = rl.RetryAfter
		}
	}
	return max(wait, 0), limited > 0 && limited == len(outcomes)
}

// sleep waits dur on clock, or until ctx ends.
func sleep(ctx context.Context, clock clockwork.Clock, dur time.Duration) error {
	if dur <= 0 {
		return ctx.Err()
	}
	t := clock.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
