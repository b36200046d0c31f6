package slotdiscovery

import (
	"context"
	"errors"
	"github.com/jonboulle/clockwork"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// tablePacket builds slot i's packet holding live entries of recs stamped
// at times ts (one each), the packet stamped fuzzNow.
func tablePacket(t *testing.T, g *Group, i int, recs []discovery.Record, ts []time.Time) *pkarrclient.SignedPacket {
	t.Helper()
	sk := g.SlotKey(i)
	var entries []sealedEntry
	for k, r := range recs {
		e := entry{kind: kindLive, time: ts[k], since: ts[k], rec: r}
		s, err := g.seal(&e, sk.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, sealedEntry{entry: e, sealed: s})
	}
	p, err := buildSlot(sk, pkarrclient.TimestampFromTime(fuzzNow), entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadTableStaleBounds: an entry exactly staleAfter old, or exactly
// futureBound ahead, still counts; a microsecond more and it is stale.
func TestReadTableStaleBounds(t *testing.T) {
	const stale, future = 150 * time.Second, 2 * time.Minute
	g := fuzzGroup(t, fuzzPassphrase)
	recs := []discovery.Record{{ID: "old"}, {ID: "older"}, {ID: "ahead"}, {ID: "further"}}
	ts := []time.Time{fuzzNow.Add(-stale), fuzzNow.Add(-stale - time.Microsecond), fuzzNow.Add(future), fuzzNow.Add(future + time.Microsecond)}
	client, backend := fuzzClient(t)
	backend.set(nil, tablePacket(t, g, 0, recs, ts))
	infos, err := ReadTable(context.Background(), client, g, TableClock(clockwork.NewFakeClockAt(fuzzNow)), TableStaleAfter(stale), TableFutureMargin(future), TableMaxSlots(1))
	if err != nil && !errors.Is(err, ErrTableTruncated) {
		t.Fatal(err)
	}
	want := map[string]bool{"old": false, "older": true, "ahead": false, "further": true}
	for _, m := range infos[0].Members {
		if m.Stale != want[m.Record.ID] {
			t.Errorf("%s: stale %v, want %v", m.Record.ID, m.Stale, want[m.Record.ID])
		}
	}
	if len(infos[0].Members) != 4 {
		t.Errorf("%d members, want 4", len(infos[0].Members))
	}
}

// TestReadTableFullAtTheLimit: a slot is full when the entries there and one
// more of the largest size seen would pass 1000 bytes; exactly 1000 fits.
func TestReadTableFullAtTheLimit(t *testing.T) {
	for _, c := range []struct {
		size int
		full bool
	}{{pkarrclient.MaxDNSSize - typicalEntry, false}, {pkarrclient.MaxDNSSize - typicalEntry + 1, true}} {
		si := SlotInfo{size: c.size}
		if si.full(typicalEntry) != c.full {
			t.Errorf("a slot of %d bytes with %d to fit: full %v, want %v", c.size, typicalEntry, !c.full, c.full)
		}
	}
}

// TestReadTableMinSlotsWins: the walk stops before a level that would pass
// TableMaxSlots, unless TableMinSlots asks for that level's first slot.
func TestReadTableMinSlotsWins(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	var packets []*pkarrclient.SignedPacket
	for i := range 3 { // levels 0 and 1 full
		packets = append(packets, slotPacket(t, g, i, big("a"+string(rune('0'+i))), big("b"+string(rune('0'+i)))))
	}
	client, backend := fuzzClient(t)
	backend.set(nil, packets...)
	for _, c := range []struct {
		min, max, want int
	}{
		{1, 3, 3}, // level 2 (slots 3-6) would pass 3 slots
		{3, 3, 3}, // min 3: slots 0-2, level 2 still not needed
		{4, 3, 7}, // min 4 asks for slot 3: level 2 is read
	} {
		infos, err := ReadTable(context.Background(), client, g, TableClock(clockwork.NewFakeClockAt(fuzzNow)),
			TableMinSlots(c.min), TableMaxSlots(c.max))
		if len(infos) != c.want {
			t.Errorf("min %d, max %d: %d slots read (%v), want %d", c.min, c.max, len(infos), err, c.want)
		}
	}
}

// TestReadTableReadsTheJoinLevels: by default a table reads slots 0-6
// whole, where a group that formed together spreads (see WithJoinSpread),
// though slot 0 is empty; TableMinSlots(1) reads slot 0 alone.
func TestReadTableReadsTheJoinLevels(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	client, backend := fuzzClient(t)
	backend.set(nil, slotPacket(t, g, 5, discovery.Record{ID: "spread"}))
	infos, err := ReadTable(context.Background(), client, g, TableClock(clockwork.NewFakeClockAt(fuzzNow)))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 7 || infos[5].State != SlotLive {
		t.Fatalf("default table: %d slots, slot 5 %v; want 7 slots, slot 5 live", len(infos), infos[min(5, len(infos)-1)].State)
	}
	infos, err = ReadTable(context.Background(), client, g, TableMinSlots(1), TableClock(clockwork.NewFakeClockAt(fuzzNow)))
	if err != nil || len(infos) != 1 {
		t.Fatalf("TableMinSlots(1): %d slots, %v; want slot 0 alone", len(infos), err)
	}
}
