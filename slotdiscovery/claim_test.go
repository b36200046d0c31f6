package slotdiscovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The claim rules (announce.go: claim, survey, unread, shallower), each on
// a peer whose views the test fills by reading a simulated relay. Slots by
// level: 0 | 1 2 | 3 4 5 6 | 7 ... 14 | 15 ... 30 | ...

// claimN claims n times and returns the slots taken, failing on an error.
func claimN(t *testing.T, a *announcement, n int) []int {
	t.Helper()
	out := make([]int, n)
	for k := range out {
		s, err := a.claim(t.Context())
		if err != nil {
			t.Fatalf("claim %d: %v", k, err)
		}
		out[k] = s
	}
	return out
}

// TestClaimTakesTheLowestLevelWithRoom: levels are tried from the top; a
// level with room ends the search, whichever of its slots have room; a
// level read whole is not read again, and nothing below it is read.
func TestClaimTakesTheLowestLevelWithRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		h.full(0)
		h.full(1)
		h.read(0, 1, 2)
		h.requests()
		a := h.ann("me")
		for k, s := range claimN(t, a, 20) {
			if s != 2 {
				t.Fatalf("claim %d took slot %d, want 2: level 0 and slot 1 are full", k, s)
			}
		}
		if r := h.requests(); len(r) != 0 {
			t.Errorf("claims over fresh reads made requests %v", r)
		}
	})
}

// TestClaimSpreadsOverALevel: a level read whole with room in several
// slots is claimed at random among them, so peers joining together do not
// race for one slot.
func TestClaimSpreadsOverALevel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		h.full(0)
		h.read(0, 1, 2)
		got := claimN(t, h.ann("me"), 40)
		if !slices.Contains(got, 1) || !slices.Contains(got, 2) || slices.ContainsFunc(got, func(s int) bool { return s != 1 && s != 2 }) {
			t.Fatalf("40 claims of level 1 took %v, want both 1 and 2 and nothing else", got)
		}
	})
}

// TestClaimKeepsOurOwnSlot: in the first level with room, a slot that still
// holds our entry (from before a restart) is taken over any other.
func TestClaimKeepsOurOwnSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		h.full(0)
		a := h.ann("me")
		h.put(2, 0, h.live(2, a.rec, a.since))
		h.read(0, 1, 2)
		for k, s := range claimN(t, a, 20) {
			if s != 2 {
				t.Fatalf("claim %d took slot %d, want 2, which holds our entry", k, s)
			}
		}
	})
}

// TestClaimReadsWhatItDoesNotKnow: with nothing read, a claim reads the
// first level, and, finding it full, the whole next one (read whole, so
// as many slots as it has), then takes a slot there.
func TestClaimReadsWhatItDoesNotKnow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		h.full(0)
		s, err := h.ann("me").claim(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s != 1 && s != 2 {
			t.Fatalf("took slot %d, want 1 or 2", s)
		}
		r := h.requests()
		slices.Sort(r)
		if want := []string{"GET 0", "GET 1", "GET 2"}; !slices.Equal(r, want) {
			t.Fatalf("requests %v, want %v", r, want)
		}
	})
}

// TestClaimTrustsReadsTwoScanPeriodsOld: a read up to two scan periods old
// counts, so the claim reads nothing again; one a microsecond older does
// not, and the claim reads the slot first.
func TestClaimTrustsReadsTwoScanPeriodsOld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const scan = 10 * time.Second
		h := newAnnHarness(t, WithScanInterval(scan))
		h.full(0)
		h.read(0, 1, 2)
		h.requests()
		a := h.ann("me")
		time.Sleep(2 * scan)
		claimN(t, a, 1)
		if r := h.requests(); len(r) != 0 {
			t.Fatalf("reads exactly two periods old were read again: %v", r)
		}
		time.Sleep(time.Microsecond)
		claimN(t, a, 1)
		r := h.requests()
		slices.Sort(r)
		if !slices.Contains(r, "GET 0") {
			t.Fatalf("reads two periods and 1 µs old were trusted: requests %v", r)
		}
	})
}

// TestContendedClaimTrustsFullSlotsLonger: a claimer turned away before
// counts a slot it found full as known until the stale bound, without
// reading it again; one not turned away reads it again after two scan
// periods; and past the stale bound both read it.
func TestContendedClaimTrustsFullSlotsLonger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const scan, stale = 10 * time.Second, 100 * time.Second
		h := newAnnHarness(t, WithScanInterval(scan), WithStaleAfter(stale))
		h.full(0)
		h.read(0)
		h.requests()
		time.Sleep(2*scan + time.Second)
		a := h.ann("me")
		a.refused = 1
		known, _, _ := a.survey(0, h.live(0, a.rec, a.since), 2*scan, true)
		if !slices.Equal(known, []int{0}) {
			t.Errorf("contended, a full slot read %v ago is not known: %v", 2*scan+time.Second, known)
		}
		known, _, _ = a.survey(0, h.live(0, a.rec, a.since), 2*scan, false)
		if len(known) != 0 {
			t.Errorf("uncontended, a slot read %v ago is known: %v", 2*scan+time.Second, known)
		}
		// At the stale bound the read still counts; past it, it does not.
		time.Sleep(stale - 2*scan - time.Second)
		// The entries in the full slot went stale too: make them fresh, as
		// their owners would have, without a read.
		h.d.mu.Lock()
		for id, e := range h.d.view.slot(0).entries {
			e.time = h.d.stamp()
			h.d.view.slot(0).entries[id] = e
		}
		h.d.mu.Unlock()
		if known, _, _ := a.survey(0, h.live(0, a.rec, a.since), 2*scan, true); len(known) != 1 {
			t.Errorf("contended, a full slot read exactly the stale bound ago is not known: %v", known)
		}
		time.Sleep(time.Microsecond)
		if known, _, _ := a.survey(0, h.live(0, a.rec, a.since), 2*scan, true); len(known) != 0 {
			t.Errorf("contended, a full slot read past the stale bound is known: %v", known)
		}
	})
}

// TestContendedClaimPassesOverANearlyFullLevel: a claimer turned away once
// passes over a level where fewer than half the slots read have room, and
// takes the first slot with room below; at half or more it stays.
func TestContendedClaimPassesOverANearlyFullLevel(t *testing.T) {
	for _, c := range []struct {
		name string
		full []int // of level 2: 3 4 5 6
		want []int // slots the contended claim may take
	}{
		{"one of four with room", []int{3, 4, 5}, []int{7}},
		{"two of four with room", []int{3, 4}, []int{5, 6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t)
				for _, i := range append([]int{0, 1, 2}, c.full...) {
					h.full(i)
				}
				h.read(0, 1, 2, 3, 4, 5, 6)
				h.read(7, 8, 9, 10, 11, 12, 13, 14)
				a := h.ann("me")
				a.refused = 1
				for k, s := range claimN(t, a, 10) {
					if !slices.Contains(c.want, s) {
						t.Fatalf("contended claim %d took slot %d, want one of %v", k, s, c.want)
					}
				}
				// Not turned away, it takes the room left in level 2.
				a.refused = 0
				for k, s := range claimN(t, a, 10) {
					if s < 3 || s > 6 || slices.Contains(c.full, s) {
						t.Fatalf("uncontended claim %d took slot %d, want the room in level 2", k, s)
					}
				}
			})
		})
	}
}

// TestUnreadPicksDistinctUnknownSlots: unread returns as many slots of the
// level as asked, never one known or twice, and no more than the level
// has left.
func TestUnreadPicksDistinctUnknownSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := h.ann("me")
		if got := a.unread(1, []int{1}, 5); !slices.Equal(got, []int{2}) {
			t.Errorf("unread(level 1, known 1, 5) = %v, want [2]", got)
		}
		if got := a.unread(0, []int{0}, 1); len(got) != 0 {
			t.Errorf("unread(level 0, known 0, 1) = %v, want none", got)
		}
		for range 20 {
			known := []int{7, 8}
			got := a.unread(3, known, 3)
			if len(got) != 3 {
				t.Fatalf("unread(level 3, 2 known, 3) = %v, want 3 slots", got)
			}
			seen := map[int]bool{}
			for _, s := range got {
				if s < 7 || s > 14 || slices.Contains(known, s) || seen[s] {
					t.Fatalf("unread(level 3, known %v, 3) = %v: out of the level, known or repeated", known, got)
				}
				seen[s] = true
			}
		}
		got := a.unread(3, nil, 8)
		slices.Sort(got)
		if !slices.Equal(got, []int{7, 8, 9, 10, 11, 12, 13, 14}) {
			t.Errorf("unread(level 3, none known, 8) = %v, want the whole level", got)
		}
	})
}

// TestMovingUp: a peer in a deep slot moves to a slot of a level above
// that a recent read found with room for it and one more entry of the
// largest size seen; not to one read too long ago, locked, or with room
// for it alone; a peer in level 0 never moves.
func TestMovingUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const scan = 10 * time.Second
		h := newAnnHarness(t, WithScanInterval(scan))
		a := h.ann("me")
		h.full(0)
		h.full(1)
		h.read(0, 1, 2)
		for k := range 10 {
			if up := a.shallower(9); up != 2 {
				t.Fatalf("try %d: from slot 9, moved to %d, want 2", k, up)
			}
		}
		if up := a.shallower(2); up != -1 {
			t.Errorf("from slot 2 (level 1), moved to %d: level 0 is full", up)
		}
		if up := a.shallower(0); up != -1 {
			t.Errorf("from slot 0, moved to %d", up)
		}
		// Level 2's first slot is not above slot 2, in level 1.
		h.full(2)
		h.read(2, 3)
		if up := a.shallower(4); up != -1 {
			t.Errorf("from slot 4 (level 2), with levels 0 and 1 full, moved to %d", up)
		}
		h.put(2, 0)
		h.read(2)
		// Exactly two periods old still counts; older does not.
		time.Sleep(2 * scan)
		if up := a.shallower(9); up != 2 {
			t.Errorf("a read two periods old: moved to %d, want 2", up)
		}
		time.Sleep(time.Microsecond)
		if up := a.shallower(9); up != -1 {
			t.Errorf("a read older than two periods: moved to %d, want -1", up)
		}

		// Room for us but not one more: stay.
		h.read(0, 1, 2)
		self, err := a.sealed(0)
		if err != nil {
			t.Fatal(err)
		}
		h.d.mu.Lock()
		need := h.d.room.need()
		h.d.mu.Unlock()
		filler := fillerFor(t, h, 2, self, need)
		h.put(2, 0, filler)
		h.read(2)
		h.d.mu.Lock()
		sv := h.d.view.slot(2)
		roomForUs, roomForTwo := h.d.room.free(sv, self, 0), h.d.room.free(sv, self, need)
		h.d.mu.Unlock()
		if !roomForUs || roomForTwo {
			t.Fatalf("filler of %d bytes: room for us %v, for us and one more %v; want true, false", filler.wireSize(), roomForUs, roomForTwo)
		}
		if up := a.shallower(9); up != -1 {
			t.Errorf("slot 2 has room for us alone: moved to %d, want -1", up)
		}
		// Locked: stay.
		h.put(2, 0)
		h.read(2)
		h.d.mu.Lock()
		h.d.view.slot(2).locked = true
		h.d.mu.Unlock()
		if up := a.shallower(9); up != -1 {
			t.Errorf("slot 2 is locked: moved to %d, want -1", up)
		}
	})
}

// fillerFor returns a stranger's entry for slot i that leaves room there
// for self but not for self and need bytes more.
func fillerFor(t *testing.T, h *annHarness, i int, self sealedEntry, need int) sealedEntry {
	t.Helper()
	for n := 0; n < 800; n++ {
		rec := big("filler")
		rec.Meta = rec.Meta[:0]
		for range n {
			rec.Meta = append(rec.Meta, 'f')
		}
		e := entry{kind: kindLive, time: h.d.stamp(), since: h.d.stamp(), rec: rec}
		if _, err := e.marshal(); err != nil {
			break
		}
		f := h.live(i, rec, h.d.stamp())
		sv := &slotView{entries: map[string]sealedEntry{"filler": f}}
		if !h.d.room.free(sv, self, need) && h.d.room.free(sv, self, 0) {
			return f
		}
	}
	t.Fatal("no filler size leaves room for exactly one entry")
	return sealedEntry{}
}

// fullLevels fills and reads every slot of levels 0 to l-1.
func fullLevels(h *annHarness, l int) {
	_, hi := levelRange(l - 1)
	idx := make([]int, hi)
	for i := range hi {
		h.full(i)
		idx[i] = i
	}
	h.read(idx...)
	h.requests()
}

// levelGets returns the slots of level l among GET requests.
func levelGets(reqs []string, l int) []int {
	lo, hi := levelRange(l)
	var out []int
	for _, r := range reqs {
		var i int
		if n, _ := fmt.Sscanf(r, "GET %d", &i); n == 1 && i >= lo && i < hi {
			out = append(out, i)
		}
	}
	return out
}

// TestClaimReadsSmallLevelsWholeAndSamplesLargeOnes: a claim that knows
// nothing of a level of up to 16 slots reads all of it when the budget
// holds the tokens and no read has come back before the last goes out
// (paced, it stops at room: TestClaimReadsALevelUntilRoom); of a larger
// level
// it reads a sample of 4, the level's first slot (its meeting point)
// among them, fewer when some are known already.
func TestClaimReadsSmallLevelsWholeAndSamplesLargeOnes(t *testing.T) {
	for _, c := range []struct {
		level, known, gets int
	}{
		{3, 0, 8},
		{4, 0, 16},
		{5, 0, 4},
		{5, 1, 3},
	} {
		t.Run(fmt.Sprintf("level %d, %d known", c.level, c.known), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t)
				fullLevels(h, c.level)
				// A round trip: the reads of a burst all go out before the
				// first answer, as on a network (with none, how many came
				// back by the last token is a matter of scheduling).
				h.readDelay.Store(int64(50 * time.Millisecond))
				lo, hi := levelRange(c.level)
				// Known slots are the level's last, full: no room there.
				for i := hi - c.known; i < hi; i++ {
					h.full(i)
					h.read(i)
				}
				h.requests()
				s, err := h.ann("me").claim(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				got := levelGets(h.requests(), c.level)
				if len(got) != c.gets {
					t.Errorf("read %d slots of level %d (%v), want %d", len(got), c.level, got, c.gets)
				}
				if hi-lo > wholeLevel && !slices.Contains(got, lo) {
					t.Errorf("the sample %v of level %d lacks its first slot %d", got, c.level, lo)
				}
				if s < lo || s >= hi {
					t.Errorf("took slot %d, want one of level %d", s, c.level)
				}
			})
		})
	}
}

// TestClaimMeetsAtALargeLevelsFirstSlot: in a sampled level, uncontended
// claimers go to its first slot with room, where every scan looks first;
// in a level read whole, they spread at random.
func TestClaimMeetsAtALargeLevelsFirstSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		fullLevels(h, 5)
		a := h.ann("me")
		for k, s := range claimN(t, a, 10) {
			if s != 31 {
				t.Fatalf("claim %d took slot %d, want 31, level 5's first", k, s)
			}
		}
	})
	for _, l := range []int{3, 4} {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t)
			fullLevels(h, l)
			lo, hi := levelRange(l)
			for i := lo; i < hi; i++ {
				h.read(i)
			}
			got := claimN(t, h.ann("me"), 20)
			slices.Sort(got)
			if got = slices.Compact(got); len(got) < 3 {
				t.Fatalf("20 claims of level %d, read whole, took only %v", l, got)
			}
		})
	}
}

// TestClaimGivesUpWithItsContext: a claim whose context ends while it
// reads returns the context's error and no slot; one none of whose reads
// succeeds returns ErrNoSlot and no slot.
func TestClaimGivesUpWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if s, err := h.ann("me").claim(ctx); s != -1 || !errors.Is(err, context.Canceled) {
			t.Errorf("claim with an ended context: slot %d, %v; want -1 and context.Canceled", s, err)
		}
		h.failReads.Store(true)
		if s, err := h.ann("me").claim(t.Context()); s != -1 || !errors.Is(err, ErrNoSlot) {
			t.Errorf("claim with every read failing: slot %d, %v; want -1 and ErrNoSlot", s, err)
		}
	})
}

// TestContendedClaimSpreadsWhenItStays: a contended claimer that stays in
// a level (half its slots have room) spreads at random there like any
// other; only after passing a level over does it take the first slot.
func TestContendedClaimSpreadsWhenItStays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		for _, i := range []int{0, 1, 2, 3, 4} {
			h.full(i)
		}
		h.read(0, 1, 2, 3, 4, 5, 6)
		a := h.ann("me")
		a.refused = 1
		got := claimN(t, a, 20)
		if !slices.Contains(got, 5) || !slices.Contains(got, 6) {
			t.Fatalf("20 contended claims of level 2 (slots 5 and 6 free) took %v, want both", got)
		}
	})
}

// TestAnnouncementsRegistry: what the view and the scanner learn of our
// announcements: which IDs are ours, which slots we hold, who is still
// claiming.
func TestAnnouncementsRegistry(t *testing.T) {
	t0 := time.Unix(1000, 0)
	as := announcements{
		"a": {slot: 3},
		"b": {slot: 0},
		"c": {slot: -1, claiming: t0},
	}
	if !as.mine("a") || as.mine("z") {
		t.Error("mine")
	}
	for i, want := range map[int]bool{0: true, 3: true, 1: false, -1: true, 2: false} {
		if as.holds(i) != want {
			t.Errorf("holds(%d) = %v, want %v", i, !want, want)
		}
	}
	got := as.slots()
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 3}) {
		t.Errorf("slots() = %v, want [0 3]", got)
	}
	c := as.claiming()
	if len(c) != 3 || !slices.ContainsFunc(c, func(x time.Time) bool { return x.Equal(t0) }) {
		t.Errorf("claiming() = %v", c)
	}
}
