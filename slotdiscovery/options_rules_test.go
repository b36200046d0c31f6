package slotdiscovery

import (
	"errors"
	"testing"
	"time"
)

// TestDefaultSchedule pins the default profile's schedule: every member of
// a group paces itself by it, and the relays' budgets were checked
// against it (see WithGetBudget, WithPutBudget).
func TestDefaultSchedule(t *testing.T) {
	c := defaultConfig()
	for name, got := range map[string][2]time.Duration{
		"republish":    {c.republish, 70 * time.Second},
		"scan":         {c.scan, 15 * time.Second},
		"stale after":  {c.staleAfter, 150 * time.Second},
		"future bound": {c.futureBound, 2 * time.Minute},
		"fast phase":   {c.fastPhase, 60 * time.Second},
		"fast scan":    {c.fastScan, time.Second},
		"verify min":   {c.verifyMin, 150 * time.Millisecond},
		"verify max":   {c.verifyMax, 800 * time.Millisecond},
		"join wait":    {c.joinWait, 500 * time.Millisecond},
		"leave":        {c.leaveTimeout, 5 * time.Second},
		"read settle":  {c.readSettle, 300 * time.Millisecond},
	} {
		if got[0] != got[1] {
			t.Errorf("default %s %v, want %v", name, got[0], got[1])
		}
	}
	if c.getRate != 0.2 || c.fastGetRate != 1.9 || c.getBurst != 8 || c.putRate != 0.23 || c.putBurst != 2 {
		t.Errorf("default budgets %v/%v/%d GET, %v/%d PUT", c.getRate, c.fastGetRate, c.getBurst, c.putRate, c.putBurst)
	}
	// pkarr-relay's one bucket for every request: about 2/s, burst 10.
	if c.reqRate != 1.9 || c.reqBurst != 10 || c.reqRate >= 2 {
		t.Errorf("default request budget %v/s burst %d, want 1.9/s burst 10", c.reqRate, c.reqBurst)
	}
	if c.joinLevels != 3 {
		t.Errorf("default join spread over %d levels, want 3", c.joinLevels)
	}
}

// TestOptionBounds: each option takes its smallest valid value and refuses
// the next one down, with an error wrapping errNonPositive.
func TestOptionBounds(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  Option
		ok   bool
	}{
		{"verify delay equal bounds", WithVerifyDelay(time.Second, time.Second), true},
		{"verify delay empty range", WithVerifyDelay(time.Second, time.Second-1), false},
		{"fast scan, no fast phase", WithFastScan(time.Second, 0), true},
		{"fast scan, negative phase", WithFastScan(time.Second, -1), false},
		{"fast scan, zero period", WithFastScan(0, time.Second), false},
		{"GET budget, smallest", WithGetBudget(1e-9, 1e-9, 1), true},
		{"GET budget, zero steady", WithGetBudget(0, 1, 1), false},
		{"GET budget, zero fast", WithGetBudget(1, 0, 1), false},
		{"GET budget, zero burst", WithGetBudget(1, 1, 0), false},
		{"PUT budget, smallest", WithPutBudget(1e-9, 1), true},
		{"request budget, smallest", WithRequestBudget(1e-9, 1), true},
		{"request budget, zero rate", WithRequestBudget(0, 1), false},
		{"request budget, zero burst", WithRequestBudget(1, 0), false},
		{"join spread, off", WithJoinSpread(0, 0), true},
		{"join spread, levels read whole", WithJoinSpread(5, time.Second), true},
		{"join spread, a sampled level", WithJoinSpread(6, time.Second), false},
		{"join spread, negative levels", WithJoinSpread(-1, time.Second), false},
		{"join spread, negative wait", WithJoinSpread(3, -1), false},
		{"PUT budget, zero rate", WithPutBudget(0, 1), false},
		{"PUT budget, zero burst", WithPutBudget(1, 0), false},
	} {
		cfg := defaultConfig()
		err := cfg.apply([]Option{c.opt})
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && c.name != "verify delay empty range" && !errors.Is(err, errNonPositive) && !errors.Is(err, errOutOfRange) {
			t.Errorf("%s: %v wraps neither errNonPositive nor errOutOfRange", c.name, err)
		}
	}
}

// TestRandomDurations: between draws uniformly in [lo, hi], both ends
// included, and returns lo for an empty range; jitter scales by a factor
// in [1-f, 1+f].
func TestRandomDurations(t *testing.T) {
	r := newLockedRand(1)
	seen := map[time.Duration]int{}
	for range 300 {
		d := r.between(1, 3)
		if d < 1 || d > 3 {
			t.Fatalf("between(1, 3) = %d", d)
		}
		seen[d]++
	}
	if len(seen) != 3 {
		t.Errorf("between(1, 3) drew %v, want each of 1, 2, 3", seen)
	}
	if d := r.between(5, 5); d != 5 {
		t.Errorf("between(5, 5) = %d", d)
	}
	if d := r.between(5, 4); d != 5 {
		t.Errorf("between(5, 4) = %d, want 5", d)
	}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		d := r.jitter(100*time.Second, 0.08)
		if d < 92*time.Second || d > 108*time.Second {
			t.Fatalf("jitter(100 s, 8%%) = %v", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 93*time.Second || hi < 107*time.Second {
		t.Errorf("1000 draws of jitter(100 s, 8%%) span only [%v, %v]", lo, hi)
	}
}

// TestJoinLevelsAreReadWhole: the scan's batch (and the join scan) treat
// every join level as one read whole; a bound past level 4 would make
// them read a sample of a level twice over.
func TestJoinLevelsAreReadWhole(t *testing.T) {
	if lo, hi := levelRange(maxJoinLevels - 1); hi-lo > wholeLevel {
		t.Errorf("join level %d has %d slots, more than the %d read whole", maxJoinLevels-1, hi-lo, wholeLevel)
	}
}
