package slotdiscovery

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The scan rules of a forming group (scan.go: scan, joinScan, joining),
// on the announcement harness with spreading turned back on: the test
// runs one scan at a time and sees its requests in order. Slots by level:
// 0 | 1 2 | 3 4 5 6 | 7 ... 14.

// joinScanOnce runs one scan that is neither a probing one nor the
// discoverer's first, and returns its requests.
func joinScanOnce(t *testing.T, h *annHarness) []string {
	t.Helper()
	h.requests()
	h.d.mu.Lock()
	h.d.scanner.scans = 3 // neither a probe (every third) nor the first
	h.d.mu.Unlock()
	h.d.scan(t.Context())
	return h.requests()
}

// joinGets returns the slots of requests, sorted.
func joinGets(reqs []string) []int {
	var out []int
	for l := 0; l <= maxLevel; l++ {
		out = append(out, levelGets(reqs, l)...)
	}
	slices.Sort(out)
	return out
}

// steadyNow ends the harness peer's fast phase.
func steadyNow(h *annHarness) {
	h.d.mu.Lock()
	h.d.scanner.fastUntil = time.Now().Add(-time.Second)
	h.d.mu.Unlock()
}

// addAnn registers an announcement of id writing slot (held: confirmed)
// without running it, and removes it when the test ends.
func addAnn(t *testing.T, h *annHarness, id string, slot int, held bool) *announcement {
	a := h.ann(id)
	a.slot = slot
	if held {
		a.held = slot
	}
	h.d.mu.Lock()
	h.d.anns[id] = a
	h.d.mu.Unlock()
	t.Cleanup(func() {
		h.d.mu.Lock()
		delete(h.d.anns, id)
		h.d.mu.Unlock()
	})
	return a
}

var (
	joinLevel0   = []int{0}
	joinLevels01 = []int{0, 1, 2}
	joinLevels02 = []int{0, 1, 2, 3, 4, 5, 6}
)

// TestScanWatcherReadsTheJoinLevelsWholeWhenFast: a peer that announces
// nothing reads levels 0-2 whole in a fast scan, though level 0 has room;
// in a steady scan it stops at level 0. With two join levels a fast scan
// reads levels 0-1.
func TestScanWatcherReadsTheJoinLevelsWholeWhenFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevels02) {
			t.Errorf("fast: read %v, want %v", got, joinLevels02)
		}
		steadyNow(h)
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevel0) {
			t.Errorf("steady: read %v, want %v", got, joinLevel0)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(2, 0))
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevels01) {
			t.Errorf("two join levels, fast: read %v, want %v", got, joinLevels01)
		}
	})
}

// TestScanWhileClaimingReadsLevel0Only: while our one announcement claims
// (no slot, or a slot written but not yet confirmed), a fast scan reads
// level 0 alone, even when level 0 is full and the scan would go deeper;
// an unconfirmed slot of ours is read first. With spreading off a claim
// does not hold the scan back.
func TestScanWhileClaimingReadsLevel0Only(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		h.full(0)
		a := addAnn(t, h, "me", -1, false)
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevel0) {
			t.Errorf("claiming: read %v, want %v", got, joinLevel0)
		}
		time.Sleep(15 * time.Second) // a fast scan reads a full slot again after a steady period
		h.d.mu.Lock()
		a.slot = 4 // written, not confirmed
		h.d.mu.Unlock()
		if got := joinScanOnce(t, h); !slices.Equal(got, []string{"GET 4", "GET 0"}) {
			t.Errorf("written in slot 4, not confirmed: requests %v, want [GET 4 GET 0]", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t) // spreading off
		h.full(0)
		addAnn(t, h, "me", -1, false)
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevels01) {
			t.Errorf("spreading off, claiming, level 0 full: read %v, want %v", got, joinLevels01)
		}
	})
}

// TestScanHoldsBackOnceAClaimStarts: the scan asks at every level whether
// a claim holds it back: one that starts while the scan reads level 1
// stops it there.
func TestScanHoldsBackOnceAClaimStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One GET a second, burst 1: level 0's read takes the token, level
		// 1's two reads wait 1 and 2 s.
		h := newAnnHarness(t, WithJoinSpread(3, 0), WithGetBudget(1, 1, 1))
		time.Sleep(10 * time.Second) // whatever the stopped scan loop took is back
		h.requests()
		h.d.mu.Lock()
		h.d.scanner.scans = 3 // neither a probe nor the first scan
		h.d.mu.Unlock()
		done := make(chan struct{})
		go func() {
			h.d.scan(t.Context())
			close(done)
		}()
		synctest.Wait() // the scan waits for level 1's tokens
		addAnn(t, h, "me", -1, false)
		<-done
		if got := joinGets(h.requests()); !slices.Equal(got, joinLevels01) {
			t.Errorf("a claim began during level 1: read %v, want %v", got, joinLevels01)
		}
	})
}

// TestScanOnceHeldReadsOwnSlotFirstThenTheJoinLevels: once our
// announcement holds a slot (here 1, in level 1), a fast scan reads it
// first, then levels 0-2 whole, and slot 1 not again; a steady scan reads
// down to our level only, in level order.
func TestScanOnceHeldReadsOwnSlotFirstThenTheJoinLevels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		addAnn(t, h, "me", 1, true)
		r := joinScanOnce(t, h)
		if len(r) == 0 || r[0] != "GET 1" || countOf(r, "GET 1") != 1 {
			t.Errorf("fast: requests %v, want GET 1 first and once", r)
		}
		if got := joinGets(r); !slices.Equal(got, joinLevels02) {
			t.Errorf("fast: read %v, want %v", got, joinLevels02)
		}
		steadyNow(h)
		r = joinScanOnce(t, h)
		if len(r) == 0 || r[0] != "GET 0" {
			t.Errorf("steady: requests %v, want GET 0 first", r)
		}
		if got := joinGets(r); !slices.Equal(got, joinLevels01) {
			t.Errorf("steady: read %v, want %v", got, joinLevels01)
		}
	})
}

// TestScanFirstOfAWatcherReadsLevel0: a discoverer's first scan, made
// before any announcement, reads level 0 alone (a peer that subscribes
// and then announces keeps its burst for the claim); the next fast scan
// of a watcher reads the join levels whole. A full level 0 still takes
// the first scan deeper, and the first scan of a peer that holds a slot
// is a fast one like any other.
func TestScanFirstOfAWatcherReadsLevel0(t *testing.T) {
	// firstScan runs the discoverer's first scan and returns the slots it
	// read.
	firstScan := func(t *testing.T, h *annHarness) []int {
		h.d.mu.Lock()
		h.d.scanner.scans = 0
		h.d.mu.Unlock()
		h.d.scan(t.Context())
		return joinGets(h.requests())
	}
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		if got := firstScan(t, h); !slices.Equal(got, joinLevel0) {
			t.Errorf("first scan: read %v, want %v", got, joinLevel0)
		}
		h.d.scan(t.Context())
		if got := joinGets(h.requests()); !slices.Equal(got, joinLevels02) {
			t.Errorf("second scan: read %v, want %v", got, joinLevels02)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		h.full(0)
		if got := firstScan(t, h); !slices.Equal(got, joinLevels01) {
			t.Errorf("first scan, level 0 full: read %v, want %v", got, joinLevels01)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		addAnn(t, h, "me", 1, true)
		if got := firstScan(t, h); !slices.Equal(got, joinLevels02) {
			t.Errorf("first scan, announcing (slot 1 held): read %v, want %v", got, joinLevels02)
		}
	})
}

// TestScanWhileJoiningCountsNoScanAndSkipsAFreshLevel0: a scan held back
// while we join reads level 0 only if no read took it within a fast
// period, and does not count towards the probe of every third scan.
func TestScanWhileJoiningCountsNoScanAndSkipsAFreshLevel0(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		addAnn(t, h, "me", -1, false)
		h.read(0)
		h.requests()
		time.Sleep(900 * time.Millisecond)
		h.d.mu.Lock()
		h.d.scanner.scans = 2
		h.d.mu.Unlock()
		h.d.scan(t.Context())
		if r := h.requests(); len(r) != 0 {
			t.Errorf("joining, slot 0 read 0.9 s ago: requests %v, want none", r)
		}
		h.d.mu.Lock()
		scans := h.d.scanner.scans
		h.d.mu.Unlock()
		if scans != 2 {
			t.Errorf("a joining scan counted: %d scans, want 2", scans)
		}
		time.Sleep(200 * time.Millisecond)
		h.d.scan(t.Context())
		if r := h.requests(); !slices.Equal(r, []string{"GET 0"}) {
			t.Errorf("joining, slot 0 read 1.1 s ago: requests %v, want [GET 0]", r)
		}
	})
}

// TestFastScanReadsTheJoinLevelsInOneBatch: a fast scan whose budget pays
// for levels 0-2 at once reads them in one round trip, not one per level;
// on a burst too small for them all it reads level by level, so a claim
// that starts meanwhile can still stop it (TestScanHoldsBackOnceAClaimStarts).
func TestFastScanReadsTheJoinLevelsInOneBatch(t *testing.T) {
	const rtt = 50 * time.Millisecond
	for _, c := range []struct {
		name       string
		gets, reqs int // the bursts of GETs and of every request
		took       time.Duration
	}{
		{"budget for all", 1000, 1000, rtt},
		{"GET burst of 4", 4, 1000, 3 * rtt},
		{"request burst of 4", 1000, 4, 3 * rtt},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t, WithJoinSpread(3, 0), WithGetBudget(1000, 1000, c.gets), WithRequestBudget(1000, c.reqs))
				h.readDelay.Store(int64(rtt))
				t0 := time.Now()
				got := joinGets(joinScanOnce(t, h))
				if !slices.Equal(got, joinLevels02) {
					t.Errorf("read %v, want %v", got, joinLevels02)
				}
				if took := time.Since(t0); took != c.took {
					t.Errorf("the scan took %v, want %v", took, c.took)
				}
			})
		})
	}
}
