package slotdiscovery

import (
	"math/rand/v2"
	"testing"
	"time"
)

// WithSeed replays a run exactly: the seeded source gives the waits it
// gave before the jitter moved to internal/backoff, one Int64N(hi-lo+1)
// per draw and none when the wait is fixed, so a simulation seeded before
// the move takes the same path after it.
func TestSeededWaitsReplay(t *testing.T) {
	l := newLockedRand(42)
	ref := rand.New(rand.NewPCG(42, 42^0x9e3779b97f4a7c15))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(ref.Int64N(int64(hi-lo)+1))
	}
	jitter := func(d time.Duration, f float64) time.Duration {
		return between(time.Duration(float64(d)*(1-f)), time.Duration(float64(d)*(1+f)))
	}
	for i := range 200 {
		d := time.Duration(i) * 37 * time.Millisecond
		if got, want := l.jitter(d, 0.25), jitter(d, 0.25); got != want {
			t.Fatalf("draw %d: jitter(%v) = %v, want %v", i, d, got, want)
		}
		if got, want := l.between(d, 2*d), between(d, 2*d); got != want {
			t.Fatalf("draw %d: between(%v, %v) = %v, want %v", i, d, 2*d, got, want)
		}
		if got, want := l.intN(8), ref.IntN(8); got != want {
			t.Fatalf("draw %d: intN = %d, want %d", i, got, want)
		}
	}
}
