package slotdiscovery

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// utEntry is an entry of the given kind, times and wire size (at least
// 14 bytes), its sealed bytes a placeholder: the room and view rules look
// only at the entry and its size.
func utEntry(id string, kind entryKind, at, since time.Time, size int) sealedEntry {
	n := size - txtRROverhead - 1
	for n+txtRROverhead+(n+254)/255 > size {
		n--
	}
	if n < 1 || n+txtRROverhead+(n+254)/255 != size {
		panic(fmt.Sprintf("no sealed length makes a %d-byte entry", size))
	}
	return sealedEntry{entry: entry{kind: kind, time: at, since: since, rec: discovery.Record{ID: id}}, sealed: make([]byte, n)}
}

// utLive is a live entry written at utStart, claimed since utStart plus
// sinceSec seconds.
func utLive(id string, sinceSec, size int) sealedEntry {
	return utEntry(id, kindLive, utStart, utStart.Add(time.Duration(sinceSec)*time.Second), size)
}

// utSlot is a slot view holding entries.
func utSlot(entries ...sealedEntry) *slotView {
	sv := &slotView{entries: make(map[string]sealedEntry), current: make(map[string]time.Time)}
	for _, e := range entries {
		sv.entries[e.rec.ID] = e
	}
	return sv
}

// utIDs lists the IDs of entries, in order.
func utIDs(entries []sealedEntry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.rec.ID)
	}
	return out
}

// The packet's room: MaxDNSSize less the header and owner name.
const utRoom = pkarrclient.MaxDNSSize - packetOverhead

func TestRoomHelperSizes(t *testing.T) {
	for _, size := range []int{14, 100, 267, 268, 270, 300, 600, utRoom} {
		if got := utEntry("x", kindLive, utStart, utStart, size).wireSize(); got != size {
			t.Errorf("utEntry(%d) is %d bytes", size, got)
		}
	}
}

// TestRoomNeed: a slot must keep room for the largest entry seen in the
// group, or a typical one before any is seen or while all are smaller.
func TestRoomNeed(t *testing.T) {
	var r room
	if r.need() != typicalEntry {
		t.Errorf("need with nothing seen: %d, want %d", r.need(), typicalEntry)
	}
	r.see(typicalEntry - 1)
	if r.need() != typicalEntry {
		t.Errorf("need after a small entry: %d, want %d", r.need(), typicalEntry)
	}
	r.see(400)
	r.see(300)
	if r.need() != 400 || r.largest != 400 {
		t.Errorf("need after 400 and 300: %d (largest %d), want 400", r.need(), r.largest)
	}
}

// TestRoomMergeOrder: a full slot keeps live entries before tombstones,
// the oldest claim first, ties by ID; ours replaces our older version.
func TestRoomMergeOrder(t *testing.T) {
	var r room
	tomb := utEntry("gone", kindTombstone, utStart, utStart.Add(-time.Hour), 50)
	sv := utSlot(
		utLive("c", 2, 50),
		utLive("b", 1, 50),
		utLive("a", 2, 50),
		tomb,
		utLive("me", -10, 50), // our older version, claimed long ago
	)
	self := utLive("me", 3, 60)
	kept, in := r.merge(sv, self)
	if want := []string{"b", "a", "c", "me", "gone"}; !in || !slices.Equal(utIDs(kept), want) {
		t.Fatalf("merge: %v (in=%v), want %v", utIDs(kept), in, want)
	}
	if kept[3].wireSize() != 60 {
		t.Errorf("our entry in the merge is %d bytes, want our new 60-byte version", kept[3].wireSize())
	}
	if kept, in := r.merge(utSlot(), self); !in || len(kept) != 1 {
		t.Errorf("merge into an empty slot: %v in=%v", utIDs(kept), in)
	}
}

// TestRoomMergeCut: entries that do not fit are cut, the newest claimant
// first; a smaller entry after a cut one still goes in; exactly full fits.
func TestRoomMergeCut(t *testing.T) {
	var r room
	half := utRoom / 2
	sv := utSlot(utLive("old", 0, half), utLive("older", -1, half))
	kept, in := r.merge(sv, utLive("me", 1, 14))
	if in || !slices.Equal(utIDs(kept), []string{"older", "old"}) {
		t.Errorf("a newcomer to an exactly full slot: %v in=%v, want [older old] and out", utIDs(kept), in)
	}
	// A big newcomer is cut, a smaller one after it still fits.
	sv = utSlot(utLive("old", 0, half), utLive("big", 1, 500), utLive("small", 3, 14))
	kept, in = r.merge(sv, utLive("me", 2, half-14))
	if !in || !slices.Equal(utIDs(kept), []string{"old", "me", "small"}) {
		t.Errorf("merge: %v in=%v, want [old me small]", utIDs(kept), in)
	}
	// Exactly at the limit, ours fits.
	sv = utSlot(utLive("old", 0, utRoom-100))
	if kept, in = r.merge(sv, utLive("me", 1, 100)); !in || len(kept) != 2 {
		t.Errorf("an entry that fills the slot exactly: %v in=%v", utIDs(kept), in)
	}
	if kept, in = r.merge(sv, utLive("me", 1, 101)); in || len(kept) != 1 {
		t.Errorf("an entry one byte too big: %v in=%v", utIDs(kept), in)
	}
}

// TestRoomFree: a claim asks for free room beside every entry there (our
// own older version aside), plus the extra asked for; exactly full is
// free.
func TestRoomFree(t *testing.T) {
	var r room
	sv := utSlot(utLive("a", 0, 300), utLive("me", 0, 500))
	for _, c := range []struct {
		self, extra int
		want        bool
	}{
		{utRoom - 300, 0, true},
		{utRoom - 300 + 1, 0, false},
		{utRoom - 400, 100, true},
		{utRoom - 400, 101, false},
	} {
		if got := r.free(sv, utLive("me", 0, c.self), c.extra); got != c.want {
			t.Errorf("free for %d bytes and %d more beside 300: %v, want %v", c.self, c.extra, got, c.want)
		}
	}
	// Another's entry counts, whatever its age or kind.
	sv = utSlot(utEntry("gone", kindTombstone, utStart, utStart, 300))
	if r.free(sv, utLive("me", 0, utRoom-299), 0) {
		t.Error("a tombstone's bytes were not counted")
	}
}

// TestRoomCutsLive: the live-entry cut check. A write that leaves out a
// live entry of another peer cuts it; leaving out a tombstone or our own
// older version does not.
func TestRoomCutsLive(t *testing.T) {
	var r room
	a, b := utLive("a", 0, 50), utLive("b", 1, 50)
	tomb := utEntry("gone", kindTombstone, utStart, utStart, 50)
	mine := utLive("me", -5, 50)
	sv := utSlot(a, b, tomb, mine)
	self := utLive("me", 0, 50)
	for _, c := range []struct {
		name string
		kept []sealedEntry
		want bool
	}{
		{"all kept", []sealedEntry{a, b, self, tomb}, false},
		{"the tombstone left out", []sealedEntry{a, b, self}, false},
		{"our older version left out", []sealedEntry{a, b, tomb}, false},
		{"a live entry left out", []sealedEntry{a, self, tomb}, true},
		{"the first live entry left out", []sealedEntry{b, self, tomb}, true},
		{"nothing kept", nil, true},
	} {
		if got := r.cutsLive(sv, c.kept, "me"); got != c.want {
			t.Errorf("%s: cutsLive %v, want %v", c.name, got, c.want)
		}
	}
	if r.cutsLive(utSlot(), nil, "me") {
		t.Error("an empty slot: cutsLive")
	}
}

// TestRoomFull: a slot is full when it has no room for the largest entry
// seen (a typical one before any), or is locked; exactly enough room is
// not full. Its own entries are all counted.
func TestRoomFull(t *testing.T) {
	var r room
	sv := utSlot(utLive("a", 0, utRoom-typicalEntry))
	if r.full(sv) {
		t.Error("a slot with room for exactly a typical entry is full")
	}
	sv = utSlot(utLive("a", 0, utRoom-typicalEntry-50), utLive("b", 0, 51))
	if !r.full(sv) {
		t.Error("a slot one byte short of a typical entry is not full")
	}
	r.see(typicalEntry + 100)
	sv = utSlot(utLive("a", 0, utRoom-typicalEntry-100))
	if r.full(sv) {
		t.Error("a slot with room for exactly the largest entry seen is full")
	}
	sv = utSlot(utLive("a", 0, utRoom-typicalEntry-99))
	if !r.full(sv) {
		t.Error("a slot one byte short of the largest entry seen is not full")
	}
	empty := utSlot()
	if r.full(empty) {
		t.Error("an empty slot is full")
	}
	empty.locked = true
	if !r.full(empty) {
		t.Error("a locked slot is not full")
	}
}
