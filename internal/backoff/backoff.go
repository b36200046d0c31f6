// Package backoff computes waits that grow and spread: exponential backoff
// with a cap, and jitter, so peers that failed (or started) together do
// not retry (or refresh) together. The random source is a parameter, so a
// caller with a seed (slotdiscovery's WithSeed, the connector's
// ConnectSeed) replays exactly and tests can pin the draw.
//
// Every function takes any input: zero and negative durations and counts
// give sensible waits, never a negative one, and no attempt count or
// factor overflows int64 nanoseconds.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Source draws uniform integers in [0, n) for n > 0; *math/rand/v2.Rand
// is one. A Source used from several goroutines must lock itself.
type Source interface {
	// Int64N returns a uniform integer in [0, n); n > 0.
	Int64N(n int64) int64
}

// Runtime is the Source of math/rand/v2's top-level functions, safe for
// concurrent use and seeded by the runtime: for callers that need no
// replay.
var Runtime Source = runtimeSource{}

type runtimeSource struct{}

func (runtimeSource) Int64N(n int64) int64 { return rand.Int64N(n) }

// Exp returns base doubled n times, capped at limit: base for n <= 0. It
// returns 0 if base or limit is not positive, and limit if base exceeds
// it. Doubling stops at the cap, so any n is safe.
func Exp(base, limit time.Duration, n int) time.Duration {
	if base <= 0 || limit <= 0 {
		return 0
	}
	d := base
	for i := 0; i < n && d < limit; i++ {
		if d > limit/2 { // doubling would pass the cap, or overflow
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// Between returns a duration drawn uniformly from [lo, hi], both
// included; negative bounds count as zero. It returns lo without drawing
// when hi <= lo, so a fixed wait uses no randomness.
func Between(src Source, lo, hi time.Duration) time.Duration {
	lo, hi = max(lo, 0), max(hi, 0)
	if hi <= lo {
		return lo
	}
	n := int64(hi - lo) // > 0, and no overflow: both are non-negative
	if n < math.MaxInt64 {
		n++ // hi included
	}
	return lo + time.Duration(src.Int64N(n))
}

// Jitter returns d scaled by a factor drawn uniformly from [1-f, 1+f],
// with f clamped to [0, 1] (NaN counts as 0) and the result to
// [0, math.MaxInt64]. A d that is not positive gives 0 (Between clamps
// both bounds), without drawing.
func Jitter(src Source, d time.Duration, f float64) time.Duration {
	if !(f > 0) {
		f = 0
	}
	f = min(f, 1)
	return Between(src, scale(d, 1-f), scale(d, 1+f))
}

// Delay is a retry's wait after n doublings: Exp, then Jitter, then
// capped at limit again, so jitter never passes the cap.
func Delay(src Source, base, limit time.Duration, n int, f float64) time.Duration {
	return min(Jitter(src, Exp(base, limit, n), f), max(limit, 0))
}

// scale returns d·k, saturating at the largest Duration: converting a
// float64 beyond int64's range to an integer is not defined in Go.
func scale(d time.Duration, k float64) time.Duration {
	x := float64(d) * k
	if x >= math.MaxInt64 { // float64(MaxInt64) is 2^63, itself out of range
		return math.MaxInt64
	}
	return time.Duration(x)
}
