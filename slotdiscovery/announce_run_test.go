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

// TestRunMovesUpWhenRoomShows: a peer that went deep while the levels
// above were full moves up at its next write once a fresh read shows room
// there for it and one more; the move is a claim and a move, and the
// entry's since is the time it came to the new slot.
func TestRunMovesUpWhenRoomShows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		for i := range 3 {
			h.full(i)
		}
		a := announceIn(t, h, discovery.Record{ID: "me", Addrs: []string{"/ip4/192.0.2.9/udp/1/quic-v1"}})
		first := h.d.Slot("me")
		if first < 3 || first > 6 {
			t.Fatalf("claimed slot %d, want one of level 2 (3-6): levels 0 and 1 are full", first)
		}
		if s := h.d.Stats(); s.Claims != 1 || s.Moves != 0 {
			t.Fatalf("stats %+v, want one claim, no move", s)
		}
		time.Sleep(10 * time.Second)
		h.put(1, 0) // slot 1 emptied
		h.read(0, 1, 2)
		moved := time.Now()
		if err := a.Update(t.Context(), a.Record()); err != nil {
			t.Fatal(err)
		}
		settle()
		if got := h.d.Slot("me"); got != 1 {
			t.Fatalf("after room showed in slot 1: in slot %d, want 1", got)
		}
		if s := h.d.Stats(); s.Claims != 2 || s.Moves != 1 {
			t.Errorf("stats %+v, want two claims, one move", s)
		}
		if e := h.held(1)["me"]; !e.since.Equal(moved) {
			t.Errorf("our entry in slot 1 is since %v, want the move's time %v", e.since, moved)
		}
		h.d.mu.Lock()
		since := a.since
		h.d.mu.Unlock()
		if !since.Equal(moved) {
			t.Errorf("announcement since %v, want the move's time %v", since, moved)
		}
	})
}

// TestRunClaimsAgainWhenCutOut: a peer whose slot filled up with
// longer-standing entries gives it up (a lost claim), claims another and
// keeps its since there as the time it came.
func TestRunClaimsAgainWhenCutOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := announceIn(t, h, discovery.Record{ID: "me", Addrs: []string{"/ip4/192.0.2.9/udp/1/quic-v1"}})
		if got := h.d.Slot("me"); got != 0 {
			t.Fatalf("claimed slot %d in an empty group, want 0", got)
		}
		time.Sleep(10 * time.Second)
		// Two peers that joined before us fill slot 0.
		old := time.Now().Add(-time.Hour)
		h.put(0, 0, h.live(0, discovery.Record{ID: "x", Meta: make([]byte, 380)}, old), h.live(0, discovery.Record{ID: "y", Meta: make([]byte, 380)}, old))
		if err := a.Update(t.Context(), a.Record()); err != nil {
			t.Fatal(err)
		}
		settle()
		got := h.d.Slot("me")
		if got != 1 && got != 2 {
			t.Fatalf("after slot 0 filled: in slot %d, want 1 or 2", got)
		}
		if s := h.d.Stats(); s.LostClaims != 1 || s.Claims != 2 || s.Moves != 0 {
			t.Errorf("stats %+v, want one lost claim, two claims, no move", s)
		}
	})
}
