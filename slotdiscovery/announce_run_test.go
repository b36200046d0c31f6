package slotdiscovery

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/phrasemeet/discovery"
)

// The announcement's loop (announce.go: run): claim, hold, move up, lose
// and claim again, with the counts it keeps.

// settle lets the peer's loop run its course for 5 s of virtual time (a
// write, its read-back, a retry), well within a republish period, and
// returns when it rests.
func settle() {
	time.Sleep(5 * time.Second)
	synctest.Wait()
}

// announceIn announces rec on the harness's peer and waits until its loop
// rests (holding a slot, waiting to republish).
func announceIn(t *testing.T, h *annHarness, rec discovery.Record) *announcement {
	t.Helper()
	if _, err := h.d.Announce(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	settle()
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	return h.d.anns[rec.ID]
}

// announceDeep fills levels 0 and 1, announces "me" and returns its
// announcement and the slot of level 2 it claimed.
func announceDeep(t *testing.T, h *annHarness) (*announcement, int) {
	t.Helper()
	for i := range 3 {
		h.full(i)
	}
	a := announceIn(t, h, discovery.Record{ID: "me", Addrs: []string{"/ip4/192.0.2.9/udp/1/quic-v1"}})
	first := h.d.Slot("me")
	if first < 3 || first > 6 {
		t.Fatalf("claimed slot %d, want one of level 2 (3-6): levels 0 and 1 are full", first)
	}
	return a, first
}

// TestRunMovesUpWhenRoomShows: a peer that went deep while the levels
// above were full moves up at its next write once a fresh read shows room
// there for it and one more (here slot 0); the move is a claim and a move,
// and the entry's since is the time it came to the new slot.
func TestRunMovesUpWhenRoomShows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a, _ := announceDeep(t, h)
		if s := h.d.Stats(); s.Claims != 1 || s.Moves != 0 {
			t.Fatalf("stats %+v, want one claim, no move", s)
		}
		time.Sleep(10 * time.Second)
		h.put(0, 0) // slot 0 emptied
		h.read(0, 1, 2)
		moved := time.Now()
		if err := a.Update(t.Context(), a.Record()); err != nil {
			t.Fatal(err)
		}
		settle()
		if got := h.d.Slot("me"); got != 0 {
			t.Fatalf("after room showed in slot 0: in slot %d, want 0", got)
		}
		if s := h.d.Stats(); s.Claims != 2 || s.Moves != 1 {
			t.Errorf("stats %+v, want two claims, one move", s)
		}
		if e := h.held(0)["me"]; !e.since.Equal(moved) {
			t.Errorf("our entry in slot 0 is since %v, want the move's time %v", e.since, moved)
		}
		h.d.mu.Lock()
		since := a.since
		h.d.mu.Unlock()
		if !since.Equal(moved) {
			t.Errorf("announcement since %v, want the move's time %v", since, moved)
		}
	})
}

// TestRunClaimsAgainWhenCutOut: a peer keeps its since while it republishes
// in its slot; when the slot fills up with longer-standing entries it
// gives it up (a lost claim) and claims again as a contended claimer: here
// it passes over level 2, where one slot of four has room, for level 3's
// first slot. Its since there is the time it came.
func TestRunClaimsAgainWhenCutOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := announceIn(t, h, discovery.Record{ID: "me", Addrs: []string{"/ip4/192.0.2.9/udp/1/quic-v1"}})
		if got := h.d.Slot("me"); got != 0 {
			t.Fatalf("claimed slot %d in an empty group, want 0", got)
		}
		h.d.mu.Lock()
		since := a.since
		h.d.mu.Unlock()
		time.Sleep(10 * time.Second)
		if err := a.Update(t.Context(), a.Record()); err != nil {
			t.Fatal(err)
		}
		settle()
		if e := h.held(0)["me"]; !e.since.Equal(since) || !e.time.After(since) {
			t.Fatalf("republished in the same slot: since %v, time %v; want since %v kept, a newer time", e.since, e.time, since)
		}
		if s := h.d.Stats(); s.Claims != 1 || s.Puts != 2 {
			t.Fatalf("stats %+v, want one claim, two PUTs", s)
		}

		time.Sleep(10 * time.Second)
		// Peers that joined before us fill slot 0, and level 1 and three of
		// level 2's slots are full.
		old := time.Now().Add(-time.Hour)
		h.put(0, 0, h.live(0, discovery.Record{ID: "x", Meta: make([]byte, 380)}, old), h.live(0, discovery.Record{ID: "y", Meta: make([]byte, 380)}, old))
		for _, i := range []int{1, 2, 3, 4, 5} {
			h.full(i)
		}
		h.read(1, 2, 3, 4, 5, 6)
		cut := time.Now()
		if err := a.Update(t.Context(), a.Record()); err != nil {
			t.Fatal(err)
		}
		settle()
		if got := h.d.Slot("me"); got != 7 {
			t.Fatalf("after slot 0 filled: in slot %d, want 7 (a contended claim passes level 2 over)", got)
		}
		if s := h.d.Stats(); s.LostClaims != 1 || s.Claims != 2 || s.Moves != 0 {
			t.Errorf("stats %+v, want one lost claim, two claims, no move", s)
		}
		if e := h.held(7)["me"]; !e.since.Equal(cut) {
			t.Errorf("since %v in slot 7, want %v", e.since, cut)
		}
	})
}

// TestRunRetriesAFailedClaim: a claim that finds no slot (no read
// succeeds) is tried again 1 to 3 s later (2 s on average), until one is
// found.
func TestRunRetriesAFailedClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		h.failReads.Store(true)
		announceIn(t, h, discovery.Record{ID: "me", Addrs: []string{"/ip4/192.0.2.9/udp/1/quic-v1"}})
		if got := h.d.Slot("me"); got != -1 {
			t.Fatalf("with no relay: in slot %d", got)
		}
		h.requests()
		time.Sleep(100 * time.Second)
		synctest.Wait()
		// Each try reads slot 0 and fails: 100 s of 1-3 s pauses make about
		// 50 tries; every pause at 1 s would make 100, at 3 s 33.
		if n := countOf(h.requests(), "GET! 0"); n < 34 || n > 70 {
			t.Errorf("%d claim tries in 100 s, want about 50 (a pause of 1 to 3 s between)", n)
		}
		h.failReads.Store(false)
		settle()
		if got := h.d.Slot("me"); got != 0 {
			t.Fatalf("once the relay answers: in slot %d, want 0", got)
		}
	})
}

// TestRunStaysWhenAMoveUpIsTurnedAway: a move up whose target filled
// before the write (the peer's read of it showed room, the read before
// the write shows it full) keeps the peer in the slot it holds, with the
// since it had there, and costs no new claim; no move is tried again
// within a republish period.
func TestRunStaysWhenAMoveUpIsTurnedAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a, first := announceDeep(t, h)
		h.d.mu.Lock()
		since := a.since
		h.d.mu.Unlock()
		time.Sleep(10 * time.Second)
		h.put(0, 0) // slot 0 emptied, and read so
		h.read(0, 1, 2)
		h.full(0) // then filled before the peer writes there
		if err := a.Update(t.Context(), a.Record()); err != nil {
			t.Fatal(err)
		}
		settle()
		if got := h.d.Slot("me"); got != first {
			t.Fatalf("after a move up turned away: in slot %d, want the held slot %d", got, first)
		}
		if s := h.d.Stats(); s.Claims != 1 || s.Moves != 0 || s.LostClaims != 0 {
			t.Errorf("stats %+v, want one claim, no move, no lost claim", s)
		}
		if e := h.held(first)["me"]; !e.since.Equal(since) {
			t.Errorf("our entry in slot %d is since %v, want the since it had there, %v", first, e.since, since)
		}
		// Room shows again at once: no second try within the period.
		h.put(0, 0)
		h.read(0, 1, 2)
		h.requests() // forget what came before
		if err := a.Update(t.Context(), a.Record()); err != nil {
			t.Fatal(err)
		}
		settle()
		if got := h.d.Slot("me"); got != first {
			t.Errorf("a second move tried within the period: in slot %d, want %d", got, first)
		}
		for _, r := range h.requests() {
			if r == "PUT 0" || r == "GET 0" {
				t.Errorf("request %q: slot 0 tried again within the period", r)
			}
		}
	})
}
