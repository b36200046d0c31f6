package slotdiscovery

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// The rules of a forming group's first full scan (announce.go: settle,
// publish's read-back; scan.go: joining, scan, scanWait, ownToRead): it
// waits until the group's writes have landed, longer when our claim found
// company, and then reads every slot once. Harness: verify delay 1 s.

// TestSettleSpan: settleAt is the claim's start plus the join wait and
// three round trips of our last write (at least the read-back's lower
// bound), plus the read-back's upper bound when busy; it never moves back.
func TestSettleSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond), WithVerifyDelay(150*time.Millisecond, 500*time.Millisecond))
		d := h.d
		t0 := time.Now()
		d.mu.Lock()
		defer d.mu.Unlock()
		check := func(what string, want time.Duration) {
			t.Helper()
			if got := d.settleAt.Sub(t0); got != want {
				t.Errorf("%s: settleAt is start + %v, want + %v", what, got, want)
			}
		}
		d.settle(t0, false)
		check("alone, no round trip measured", 650*time.Millisecond)
		d.settle(t0, true)
		check("busy", 1150*time.Millisecond)
		d.settle(t0, false)
		check("alone after busy", 1150*time.Millisecond)
		d.settleAt = time.Time{}
		d.rtt = 100 * time.Millisecond
		d.settle(t0, false)
		check("alone, 100 ms round trips", 800*time.Millisecond)
		d.settle(t0, true)
		check("busy, 100 ms round trips", 1300*time.Millisecond)
	})
}

// spreadAnn returns an announcement claiming a slot of a forming group
// since now, as claim leaves one, registered with the discoverer.
func spreadAnn(t *testing.T, h *annHarness) *announcement {
	a := addAnn(t, h, "me", -1, false)
	h.d.mu.Lock()
	a.claiming = time.Now()
	a.spread, a.unjudged = true, true
	h.d.settle(a.claiming, false)
	h.d.mu.Unlock()
	return a
}

// TestReadBackJudgesTheGroup: the read-back of a spread claim's first
// write ends its wait for a verdict, and makes settleAt the busy one when
// the slot holds another live peer, or when the write was lost; a slot
// holding only a tombstone beside us is no company.
func TestReadBackJudgesTheGroup(t *testing.T) {
	cases := []struct {
		name  string
		setup func(h *annHarness)
		busy  bool
	}{
		{"alone", func(h *annHarness) {}, false},
		{"beside a live peer", func(h *annHarness) {
			h.put(3, 0, h.live(3, discovery.Record{ID: "other"}, h.d.stamp()))
		}, true},
		{"beside a tombstone", func(h *annHarness) {
			h.put(3, 0, tombstone(t, h, 3, "gone"))
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond), WithVerifyDelay(150*time.Millisecond, 150*time.Millisecond))
				c.setup(h)
				a := spreadAnn(t, h)
				t0 := a.claiming
				if !a.publish(t.Context(), 3) {
					t.Fatal("publish failed")
				}
				h.d.mu.Lock()
				defer h.d.mu.Unlock()
				if a.unjudged {
					t.Error("still waiting for a verdict after the read-back")
				}
				want := 500*time.Millisecond + 150*time.Millisecond
				if c.busy {
					want += 150 * time.Millisecond
				}
				if got := h.d.settleAt.Sub(t0); got != want {
					t.Errorf("settleAt is start + %v, want + %v", got, want)
				}
			})
		})
	}
	t.Run("lost", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// One PUT per 10 s: the write after the lost one waits.
			h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond), WithVerifyDelay(150*time.Millisecond, 150*time.Millisecond), WithPutBudget(0.1, 1))
			a := spreadAnn(t, h)
			t0 := a.claiming
			// Another writer's packet, stamped after ours and holding no
			// live peer (a tombstone), lands while we wait for the
			// read-back: our write is lost, with no company to see.
			go func() {
				time.Sleep(100 * time.Millisecond)
				h.put(3, 0, tombstone(t, h, 3, "gone"))
			}()
			done := make(chan bool)
			go func() { done <- a.publish(t.Context(), 3) }()
			time.Sleep(2 * time.Second) // the second write waits for its PUT
			h.d.mu.Lock()
			if h.d.stats.Collisions == 0 {
				t.Error("the racer did not make us lose a write")
			}
			if !a.lostWrite {
				t.Error("the lost write is not marked on the claim")
			}
			if a.unjudged {
				t.Error("waiting for a PUT after the read-back, still holding scans back")
			}
			if got, want := h.d.settleAt.Sub(t0), 800*time.Millisecond; got != want {
				t.Errorf("settleAt is start + %v, want + %v", got, want)
			}
			h.d.mu.Unlock()
			if !<-done {
				t.Error("the second write failed")
			}
		})
	})
}

// TestHeldClaimForgetsItsLostWrite: once a claim that lost a write holds
// its slot, the mark of the loss goes: the next claim's waits hold the
// scans back again until it loses one of its own.
func TestHeldClaimForgetsItsLostWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithVerifyDelay(150*time.Millisecond, 150*time.Millisecond))
		var once sync.Once
		h.afterPut = func(p *pkarrclient.SignedPacket) {
			once.Do(func() {
				i := h.keys[p.PublicKey()]
				go func() {
					time.Sleep(50 * time.Millisecond)
					h.put(i, 0, tombstone(t, h, i, "gone"))
				}()
			})
		}
		a := announceIn(t, h, discovery.Record{ID: "me", Addrs: []string{"/ip4/192.0.2.9/udp/4001/quic-v1"}})
		time.Sleep(10 * time.Second)
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		if h.d.stats.Collisions == 0 {
			t.Fatal("the racer did not make us lose a write")
		}
		if a.held < 0 || a.lostWrite {
			t.Errorf("held slot %d, lost write still marked %v; want a slot held and no mark", a.held, a.lostWrite)
		}
	})
}

// tombstone returns id's tombstone sealed for slot i.
func tombstone(t *testing.T, h *annHarness, i int, id string) sealedEntry {
	t.Helper()
	e := entry{kind: kindTombstone, time: h.d.stamp(), since: h.d.stamp(), rec: discovery.Record{ID: id}}
	s, err := h.g.seal(&e, h.g.SlotKey(i).PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return sealedEntry{entry: e, sealed: s}
}

// TestClaimSetsSettleAt: a spread claim waits for its verdict and sets
// settleAt as alone; a claim that does not spread sets nothing.
func TestClaimSetsSettleAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond), WithVerifyDelay(150*time.Millisecond, 500*time.Millisecond))
		a := h.ann("me")
		a.claiming = time.Now().Add(-100 * time.Millisecond)
		if _, err := a.claim(t.Context()); err != nil {
			t.Fatal(err)
		}
		h.d.mu.Lock()
		if !a.spread || !a.unjudged {
			t.Errorf("spread claim: spread %v, unjudged %v, want both", a.spread, a.unjudged)
		}
		if got, want := h.d.settleAt.Sub(a.claiming), 650*time.Millisecond; got != want {
			t.Errorf("settleAt is the claim's start + %v, want + %v", got, want)
		}
		h.d.mu.Unlock()
	})
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t) // spreading off
		a := h.ann("me")
		a.claiming = time.Now()
		if _, err := a.claim(t.Context()); err != nil {
			t.Fatal(err)
		}
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		if a.unjudged || !h.d.settleAt.IsZero() {
			t.Errorf("claim without spreading: unjudged %v, settleAt %v, want neither", a.unjudged, h.d.settleAt)
		}
	})
}

// TestPublishTurnedAwayEndsTheWait: a spread claim turned away by a full
// slot before writing no longer holds scans back.
func TestPublishTurnedAwayEndsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond))
		h.full(3)
		a := spreadAnn(t, h)
		if a.publish(t.Context(), 3) {
			t.Fatal("publish into a full slot succeeded")
		}
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		if a.unjudged {
			t.Error("a claim turned away still holds scans back")
		}
	})
}

// TestScanWaitsForTheGroupToSettle: with our slot confirmed before
// settleAt, a scan reads nothing, and the next is due at settleAt (not a
// fast period later); at settleAt it reads the join levels whole, our own
// slot first.
func TestScanWaitsForTheGroupToSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// settleAt 650 ms after the claim began: sooner than any fast
		// period.
		h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond), WithVerifyDelay(150*time.Millisecond, 500*time.Millisecond))
		a := spreadAnn(t, h)
		began := time.Now()
		h.d.mu.Lock()
		a.slot, a.held, a.unjudged = 4, 4, false
		settleAt := h.d.settleAt
		h.d.mu.Unlock()
		if r := joinScanOnce(t, h); len(r) != 0 {
			t.Errorf("held, before settleAt: requests %v, want none", r)
		}
		h.d.mu.Lock()
		wait := h.d.scanWait(began, true)
		h.d.mu.Unlock()
		if want := settleAt.Sub(began); wait != want {
			t.Errorf("next scan in %v, want %v (at settleAt)", wait, want)
		}
		time.Sleep(settleAt.Sub(time.Now()))
		r := joinScanOnce(t, h)
		if len(r) == 0 || r[0] != "GET 4" {
			t.Errorf("at settleAt: requests %v, want GET 4 first", r)
		}
		if got := joinGets(r); !slices.Equal(got, joinLevels02) {
			t.Errorf("at settleAt: read %v, want %v", got, joinLevels02)
		}
		h.d.mu.Lock()
		wait = h.d.scanWait(time.Now(), true)
		h.d.mu.Unlock()
		if wait < 800*time.Millisecond {
			t.Errorf("after settleAt, next scan in %v, want a fast period (1 s ± 20%%)", wait)
		}
	})
}

// TestScanWaitsForTheFirstReadBack: past settleAt, a spread claim whose
// first write is not read back yet still holds scans at level 0; once
// judged, a claim that reads its way (here: between writes) holds them
// there too, and one that waits for a PUT token lets them read the join
// levels whole.
func TestScanWaitsForTheFirstReadBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond))
		a := spreadAnn(t, h)
		time.Sleep(2 * time.Second)
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevel0) {
			t.Errorf("past settleAt, first write not read back: read %v, want %v", got, joinLevel0)
		}
		h.d.mu.Lock()
		a.spread, a.unjudged = false, false
		h.d.mu.Unlock()
		time.Sleep(15 * time.Second)
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevel0) {
			t.Errorf("judged, claiming: read %v, want %v", got, joinLevel0)
		}
		h.d.mu.Lock()
		a.budgetWait = true
		h.d.mu.Unlock()
		time.Sleep(15 * time.Second)
		if got := joinGets(joinScanOnce(t, h)); !slices.Equal(got, joinLevels02) {
			t.Errorf("judged, waiting for a PUT: read %v, want %v", got, joinLevels02)
		}
	})
}

// TestPublishMarksItsWaitForABudget: a write waiting for its PUT token
// says so, and so does one waiting for the token of the read before it
// once a write of its claim was lost, unless the join levels were read
// mostly full (a large group, whose claims need the budget the scans
// would spend); none is marked once the write is done.
func TestPublishMarksItsWaitForABudget(t *testing.T) {
	for _, c := range []struct {
		name       string
		spend      func(b *budget) *rate.Limiter // the limiter whose tokens it spends
		lost       bool                          // a write of the claim was lost
		fullLevels int                           // slots 0 to fullLevels-1 read full
		want       bool
	}{
		{"PUT", func(b *budget) *rate.Limiter { return b.puts }, false, 0, true},
		{"own read", func(b *budget) *rate.Limiter { return b.ownGets }, false, 0, false},
		{"own read after a lost write", func(b *budget) *rate.Limiter { return b.ownGets }, true, 0, true},
		{"own read after a lost write, join levels half full", func(b *budget) *rate.Limiter { return b.ownGets }, true, 3, true},
		{"own read after a lost write, join levels mostly full", func(b *budget) *rate.Limiter { return b.ownGets }, true, 4, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// One PUT burst: the reads around our writes get two.
				h := newAnnHarness(t, WithPutBudget(0.1, 1), WithJoinSpread(3, 0))
				for i := range c.fullLevels {
					h.full(i)
					h.read(i)
				}
				a := addAnn(t, h, "me", -1, false)
				a.lostWrite = c.lost
				lim := c.spend(h.d.budget)
				for lim.TokensAt(time.Now()) >= 1 {
					if err := h.d.budget.take(t.Context(), lim); err != nil {
						t.Fatal(err)
					}
				}
				done := make(chan bool)
				go func() { done <- a.publish(t.Context(), 6) }()
				time.Sleep(time.Second)
				synctest.Wait()
				h.d.mu.Lock()
				waiting := h.d.anns.budgetWaiting()
				h.d.mu.Unlock()
				if waiting != c.want {
					t.Errorf("waiting for a token: marked %v, want %v", waiting, c.want)
				}
				if !<-done {
					t.Fatal("publish failed")
				}
				h.d.mu.Lock()
				defer h.d.mu.Unlock()
				if h.d.anns.budgetWaiting() {
					t.Error("still marked waiting after the write")
				}
			})
		})
	}
}

// TestScanSkipsOwnSlotJustReadBack: a fast scan reads our slot first
// unless a read (our read-back) took it within half a fast period.
func TestScanSkipsOwnSlotJustReadBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		addAnn(t, h, "me", 1, true)
		h.read(1)
		time.Sleep(400 * time.Millisecond)
		r := joinScanOnce(t, h)
		if countOf(r, "GET 1") != 0 {
			t.Errorf("slot 1 read 0.4 s ago: requests %v, want no GET 1", r)
		}
		if got := joinGets(r); !slices.Equal(got, []int{0, 2, 3, 4, 5, 6}) {
			t.Errorf("read %v, want the join levels but slot 1", got)
		}
		time.Sleep(200 * time.Millisecond)
		if r := joinScanOnce(t, h); len(r) == 0 || r[0] != "GET 1" {
			t.Errorf("slot 1 read 0.6 s ago: requests %v, want GET 1 first", r)
		}
	})
}

// TestFirstReadBackOfALoneLateClaim: the first write of a spread claim
// that knows no other live peer and came in the second half of the join
// wait is read back by settleAt (at least the read-back's lower bound and
// twice the write's round trip after it); any other write keeps the
// random delay it drew.
func TestFirstReadBackOfALoneLateClaim(t *testing.T) {
	const drawn = 700 * time.Millisecond
	cases := []struct {
		name     string
		ago      time.Duration // since the claim began
		rtt      time.Duration
		drawn    time.Duration
		company  bool
		unjudged bool
		want     time.Duration
	}{
		{"lone, late", 400 * time.Millisecond, 0, drawn, false, true, 250 * time.Millisecond},
		{"lone, late, drawn shorter", 400 * time.Millisecond, 0, 200 * time.Millisecond, false, true, 200 * time.Millisecond},
		{"lone, late, settleAt passed", 800 * time.Millisecond, 0, drawn, false, true, 150 * time.Millisecond},
		{"lone, late, slow round trips", 800 * time.Millisecond, 200 * time.Millisecond, drawn, false, true, 400 * time.Millisecond},
		{"lone, at half the wait", 250 * time.Millisecond, 0, drawn, false, true, 400 * time.Millisecond},
		{"lone, early", 200 * time.Millisecond, 0, drawn, false, true, drawn},
		{"late, a live peer known", 400 * time.Millisecond, 0, drawn, true, true, drawn},
		{"lone, late, judged already", 400 * time.Millisecond, 0, drawn, false, false, drawn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond), WithVerifyDelay(150*time.Millisecond, 800*time.Millisecond))
				if c.company {
					h.put(0, 0, h.live(0, discovery.Record{ID: "other"}, h.d.stamp()))
					h.read(0)
				}
				a := spreadAnn(t, h)
				h.d.mu.Lock()
				a.claiming = time.Now().Add(-c.ago)
				h.d.settleAt = a.claiming.Add(650 * time.Millisecond)
				a.unjudged = c.unjudged
				h.d.rtt = c.rtt
				h.d.mu.Unlock()
				if got := a.firstReadBack(c.drawn); got != c.want {
					t.Errorf("read back after %v, want %v", got, c.want)
				}
			})
		})
	}
}

// TestPublishReadsBackALoneLateClaimBySettleAt: publish waits the
// shortened delay of firstReadBack before a lone late claim's read-back
// (settleAt has nearly come: the read-back's lower bound), and one drawn
// from the range beside company (the relay answers at once, so publish
// takes just the wait).
func TestPublishReadsBackALoneLateClaimBySettleAt(t *testing.T) {
	for _, company := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond), WithVerifyDelay(300*time.Millisecond, 700*time.Millisecond))
			if company {
				h.put(3, 0, h.live(3, discovery.Record{ID: "other"}, h.d.stamp()))
			}
			a := spreadAnn(t, h)
			h.d.mu.Lock()
			a.claiming = time.Now().Add(-400 * time.Millisecond)
			h.d.settleAt = time.Now().Add(50 * time.Millisecond)
			h.d.mu.Unlock()
			t0 := time.Now()
			if !a.publish(t.Context(), 3) {
				t.Fatal("publish failed")
			}
			took := time.Since(t0)
			if !company && took != 300*time.Millisecond {
				t.Errorf("alone: publish took %v, want 300ms", took)
			}
			if company && (took <= 300*time.Millisecond || took > 700*time.Millisecond) {
				t.Errorf("beside company: publish took %v, want a draw within (300ms, 700ms]", took)
			}
		})
	}
}
