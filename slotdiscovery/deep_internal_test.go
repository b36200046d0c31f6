package slotdiscovery

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// slotPacket builds slot i's packet holding fresh live entries of recs.
func slotPacket(t *testing.T, g *Group, i int, recs ...discovery.Record) *pkarrclient.SignedPacket {
	t.Helper()
	return slotPacketSince(t, g, i, fuzzNow, recs...)
}

// slotPacketSince is slotPacket with entries that came to the slot at
// since: an hour before fuzzNow makes a settled group.
func slotPacketSince(t *testing.T, g *Group, i int, since time.Time, recs ...discovery.Record) *pkarrclient.SignedPacket {
	t.Helper()
	sk := g.SlotKey(i)
	var entries []sealedEntry
	for _, r := range recs {
		e := entry{kind: kindLive, time: fuzzNow, since: since, rec: r}
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

// big is a record whose entry, two to a slot, leaves no room for another.
func big(name string) discovery.Record {
	return discovery.Record{ID: name, Meta: []byte(strings.Repeat("m", 350))}
}

// deepTest starts a discoverer over a backend holding packets, on a
// stopped fake clock, and waits for its first scan to end (see
// utDiscoverer).
func deepTest(t *testing.T, packets ...*pkarrclient.SignedPacket) *Discoverer {
	t.Helper()
	d, _ := utDiscoverer(t, packets...)
	return d
}

// TestProbeReadsTheNextLevelsFirstSlot: levels 0-2 full, level 3 with room
// (so scans stop there), and a peer in the first slot of level 4 (16
// slots). The probe one level deeper, every third scan, reads that first
// slot, where a claimer that passed over level 3's last places goes.
func TestProbeReadsTheNextLevelsFirstSlot(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	var packets []*pkarrclient.SignedPacket
	for i := range 7 {
		packets = append(packets, slotPacket(t, g, i, big(fmt.Sprint("big-", i, "a")), big(fmt.Sprint("big-", i, "b"))))
	}
	packets = append(packets, slotPacket(t, g, 7, discovery.Record{ID: "x"}), slotPacket(t, g, 15, discovery.Record{ID: "y"}))
	d := deepTest(t, packets...)
	ctx := context.Background()
	for n := 0; n < 3; n++ {
		if _, ok := d.tracker.Get("y"); ok {
			return
		}
		d.scan(ctx)
	}
	if _, ok := d.tracker.Get("y"); !ok {
		t.Fatalf("three scans and a probe did not find the peer in level 4's first slot; %d peers known", len(d.Peers()))
	}
}

// TestContendedClaimTakesTheFirstSlotBelow: in a settled group, a claimer
// turned away once passes over a level where few slots have room, and
// takes the first slot with room of the next level, where probes look
// (see the test above). In a forming group it spreads again over the join
// levels, and takes the last place of level 2, until it has been turned
// away respreadTries times.
func TestContendedClaimTakesTheFirstSlotBelow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		since   time.Time
		refused int
		want    int
	}{
		{"settled", fuzzNow.Add(-time.Hour), 1, 7},
		{"forming", fuzzNow, 1, 6},
		{"forming, turned away often", fuzzNow, respreadTries, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := fuzzGroup(t, fuzzPassphrase)
			var packets []*pkarrclient.SignedPacket
			for i := range 6 { // levels 0 and 1, and three of level 2's four slots
				packets = append(packets, slotPacketSince(t, g, i, tc.since, big(fmt.Sprint("big-", i, "a")), big(fmt.Sprint("big-", i, "b"))))
			}
			packets = append(packets, slotPacketSince(t, g, 6, tc.since, discovery.Record{ID: "x"}))
			d := deepTest(t, packets...)
			a := &announcement{d: d, rec: discovery.Record{ID: "me", Addrs: []string{"/ip4/192.0.2.1/udp/1/quic-v1"}}, slot: -1, held: -1, refused: tc.refused}
			got, err := a.claim(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("a claim turned away %d times took slot %d, want %d", tc.refused, got, tc.want)
			}
			d.mu.Lock()
			respread := a.respread
			d.mu.Unlock()
			if respread != (tc.want == 6) {
				t.Fatalf("respread %v after taking slot %d", respread, got)
			}
			// Not turned away: it takes the last place of level 2.
			a.refused = 0
			if got, err := a.claim(context.Background()); err != nil || got != 6 {
				t.Fatalf("an uncontended claim took slot %d (%v), want 6", got, err)
			}
		})
	}
}
