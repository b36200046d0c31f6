package backoff

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// pin is a Source that always draws the lowest (false) or highest (true)
// value, counts its draws and fails the test on an n that Int64N would
// panic on.
type pin struct {
	t     *testing.T
	high  bool
	draws int
}

func (p *pin) Int64N(n int64) int64 {
	p.t.Helper()
	if n <= 0 {
		p.t.Fatalf("Int64N(%d): math/rand would panic", n)
	}
	p.draws++
	if p.high {
		return n - 1
	}
	return 0
}

const maxDuration = time.Duration(math.MaxInt64)

func TestExp(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name        string
		base, limit time.Duration
		n           int
		want        time.Duration
	}{
		{"no failure yet", s, 10 * s, 0, s},
		{"one doubling", s, 10 * s, 1, 2 * s},
		{"three doublings", s, 10 * s, 3, 8 * s},
		{"exactly at the cap", s, 8 * s, 3, 8 * s},
		{"the cap", s, 10 * s, 4, 10 * s},
		{"far past the cap", s, 10 * s, 500, 10 * s},
		{"an odd cap", 3, 7, 1, 6},
		{"an odd cap, passed", 3, 7, 2, 7},
		{"past the top of the range", time.Hour, maxDuration, 100, maxDuration},
		{"large counts do not overflow", time.Hour, 1 << 62, 1 << 30, 1 << 62},
		{"the largest cap", time.Hour, maxDuration, math.MaxInt, maxDuration},
		{"a base over the cap", 20 * s, 10 * s, 0, 10 * s},
		{"a negative count", s, 10 * s, -5, s},
		{"zero base", 0, 10 * s, 3, 0},
		{"negative base", -s, 10 * s, 3, 0},
		{"zero cap", s, 0, 3, 0},
		{"negative cap", s, -s, 3, 0},
	} {
		if got := Exp(c.base, c.limit, c.n); got != c.want {
			t.Fatalf("%s: Exp(%v, %v, %d) = %v, want %v", c.name, c.base, c.limit, c.n, got, c.want)
		}
	}
}

func TestBetween(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name      string
		lo, hi    time.Duration
		low, high time.Duration // with the lowest and the highest draw
		draws     int
	}{
		{"both ends included", s, 3 * s, s, 3 * s, 1},
		{"one nanosecond wide", 5, 6, 5, 6, 1},
		{"fixed", 2 * s, 2 * s, 2 * s, 2 * s, 0},
		{"reversed bounds", 3 * s, s, 3 * s, 3 * s, 0},
		{"negative bounds", -3 * s, -s, 0, 0, 0},
		{"a negative low bound", -3 * s, s, 0, s, 1},
		{"the whole range", 0, maxDuration, 0, maxDuration - 1, 1},
		{"the top of the range", maxDuration - 1, maxDuration, maxDuration - 1, maxDuration, 1},
	} {
		for _, high := range []bool{false, true} {
			src := &pin{t: t, high: high}
			want := c.low
			if high {
				want = c.high
			}
			if got := Between(src, c.lo, c.hi); got != want || src.draws != c.draws {
				t.Errorf("%s: Between(%v, %v) with high=%v = %v after %d draws, want %v after %d",
					c.name, c.lo, c.hi, high, got, src.draws, want, c.draws)
			}
		}
	}
}

func TestJitter(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name      string
		d         time.Duration
		f         float64
		low, high time.Duration
		draws     int
	}{
		{"20%", 4 * s, 0.2, 3200 * time.Millisecond, 4800 * time.Millisecond, 1},
		{"10%", 10 * s, 0.1, 9 * s, 11 * s, 1},
		{"none", 4 * s, 0, 4 * s, 4 * s, 0},
		{"a negative factor counts as none", 4 * s, -0.5, 4 * s, 4 * s, 0},
		{"NaN counts as none", 4 * s, math.NaN(), 4 * s, 4 * s, 0},
		{"a factor over 1 counts as 1", 4 * s, 3, 0, 8 * s, 1},
		{"zero", 0, 0.2, 0, 0, 0},
		{"negative", -s, 0.2, 0, 0, 0},
		// 2^62 doubled is 2^63, past the largest Duration: saturated.
		{"no overflow", 1 << 62, 1, 0, maxDuration - 1, 1},
		{"no overflow at the top", maxDuration, 0.5, maxDuration / 2, maxDuration, 1},
	} {
		for _, high := range []bool{false, true} {
			src := &pin{t: t, high: high}
			want := c.low
			if high {
				want = c.high
			}
			got := Jitter(src, c.d, c.f)
			// float64 holds 53 bits: allow its rounding at the top.
			if diff, tol := got-want, time.Duration(float64(want)*1e-15); diff < -tol || diff > tol || src.draws != c.draws {
				t.Errorf("%s: Jitter(%v, %v) with high=%v = %v after %d draws, want %v after %d",
					c.name, c.d, c.f, high, got, src.draws, want, c.draws)
			}
		}
	}
}

func TestDelay(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name      string
		base, lim time.Duration
		n         int
		f         float64
		low, high time.Duration
	}{
		{"grows then spreads", s, 10 * s, 2, 0.2, 3200 * time.Millisecond, 4800 * time.Millisecond},
		{"jitter never passes the cap", s, 10 * s, 40, 0.2, 8 * s, 10 * s},
		{"exact without jitter", s, 10 * s, 3, 0, 8 * s, 8 * s},
		{"a negative cap", s, -s, 3, 0.2, 0, 0},
	} {
		for _, high := range []bool{false, true} {
			want := c.low
			if high {
				want = c.high
			}
			if got := Delay(&pin{t: t, high: high}, c.base, c.lim, c.n, c.f); got != want {
				t.Errorf("%s: Delay(%v, %v, %d, %v) with high=%v = %v, want %v", c.name, c.base, c.lim, c.n, c.f, high, got, want)
			}
		}
	}
}

// A seeded source replays: the same seed, the same waits.
func TestSeededReplays(t *testing.T) {
	run := func() []time.Duration {
		src := rand.New(rand.NewPCG(7, 9))
		var out []time.Duration
		for n := range 20 {
			out = append(out, Delay(src, time.Second, time.Minute, n, 0.2))
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("wait %d: %v then %v", i, a[i], b[i])
		}
	}
	if got := Jitter(Runtime, time.Second, 0.5); got < time.Second/2 || got > 3*time.Second/2 {
		t.Fatalf("Runtime jitter %v outside [0.5 s, 1.5 s]", got)
	}
}
