package mdnsdiscovery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/zeroconf/v2"

	"github.com/phrasemeet/discovery"
)

// The reader's rules, driven by hand on a fake clock: records go in as
// zeroconf would deliver them, events come out of the Tracker. No
// network, so every case is exact.

const (
	testStale = 30 * time.Second
	testSkew  = 5 * time.Second
)

type harness struct {
	t      *testing.T
	d      *Discoverer
	clock  *clockwork.FakeClock
	peer   *sealer // a peer of the same group
	events <-chan discovery.Event
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clock := clockwork.NewFakeClockAt(t0)
	secret := secretOf(1)
	d, err := newDiscoverer(secret, []Option{
		WithClock(clock), WithRepublishInterval(10 * time.Second),
		WithStaleAfter(testStale), WithMaxClockSkew(testSkew),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); d.tracker.Close() })
	events, err := d.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, d: d, clock: clock, peer: mustSealer(t, secret), events: events}
}

// hear delivers w as the browser would.
func (h *harness) hear(w wireRecord) {
	h.t.Helper()
	txt, err := h.peer.seal(&w)
	if err != nil {
		h.t.Fatal(err)
	}
	h.d.handle(&zeroconf.ServiceEntry{Text: txt})
}

// expect checks the next event, which must already be queued.
func (h *harness) expect(typ discovery.EventType, id string, addrs ...string) discovery.Event {
	h.t.Helper()
	select {
	case e := <-h.events:
		if e.Type != typ || e.Peer.ID != id {
			h.t.Fatalf("event %v %q, want %v %q", e.Type, e.Peer.ID, typ, id)
		}
		if typ != discovery.Lost && fmt.Sprint(e.Peer.Addrs) != fmt.Sprint(addrs) {
			h.t.Fatalf("%v %q with addrs %v, want %v", typ, id, e.Peer.Addrs, addrs)
		}
		if len(e.Peer.Sources) != 1 || e.Peer.Sources[0] != "mdns" {
			h.t.Fatalf("sources %v, want [mdns]", e.Peer.Sources)
		}
		return e
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no %v event for %q", typ, id)
	}
	return discovery.Event{}
}

// quiet checks that no event is queued. Tracker delivery is asynchronous,
// so it waits a little: long enough for a queued event to show.
func (h *harness) quiet(why string) {
	h.t.Helper()
	select {
	case e := <-h.events:
		h.t.Fatalf("%s: unexpected %v for %q", why, e.Type, e.Peer.ID)
	case <-time.After(50 * time.Millisecond):
	}
}

func (h *harness) now() time.Time { return h.clock.Now() }

func TestStateFoundUpdatedLostAndReplays(t *testing.T) {
	h := newHarness(t)
	v1 := liveRecord("p", 100, h.now(), "/ip4/192.0.2.1/udp/1")
	h.hear(v1)
	if e := h.expect(discovery.Found, "p", "/ip4/192.0.2.1/udp/1"); !e.Peer.Seen.Equal(v1.time) {
		t.Fatalf("Seen = %v, want the sealed time %v", e.Peer.Seen, v1.time)
	}
	h.hear(v1)
	h.quiet("the same record again")

	// A refresh: the same version sealed later. Not news.
	h.clock.Advance(10 * time.Second)
	v1r := v1
	v1r.time = h.now()
	h.hear(v1r)
	h.quiet("a refresh")
	if p, _ := h.d.tracker.Get("p"); !p.Seen.Equal(v1r.time) {
		t.Fatalf("Seen after a refresh = %v, want %v", p.Seen, v1r.time)
	}

	// An update: a newer version with other addresses.
	v2 := liveRecord("p", 101, h.now(), "/ip4/198.51.100.7/udp/1")
	h.hear(v2)
	h.expect(discovery.Updated, "p", "/ip4/198.51.100.7/udp/1")

	// Replays of the older version, even freshly stamped ones, change
	// nothing.
	before := h.d.Stats().Replayed
	h.hear(v1)
	h.hear(v1r)
	h.quiet("a replay of the old version")
	if got := h.d.Stats().Replayed - before; got != 2 {
		t.Fatalf("Replayed grew by %d, want 2", got)
	}

	// The tombstone: Lost at once.
	gone := wireRecord{kind: kindGone, origin: v1.origin, seq: 102, time: h.now(), rec: discovery.Record{ID: "p"}}
	h.hear(gone)
	h.expect(discovery.Lost, "p")
	// Live copies from before the leave cannot bring it back.
	h.hear(v2)
	h.hear(v1r)
	h.quiet("a replay after the leave")

	// The peer comes back with a newer version: Found again.
	v3 := liveRecord("p", 103, h.now(), "/ip4/192.0.2.3/udp/1")
	h.hear(v3)
	h.expect(discovery.Found, "p", "/ip4/192.0.2.3/udp/1")
	// A replayed tombstone from before does not take it away.
	h.hear(gone)
	h.quiet("a replayed tombstone")
}

// A version number orders versions before the sealing time does, so an
// update survives the peer's clock stepping back.
func TestStateSeqBeatsTime(t *testing.T) {
	h := newHarness(t)
	h.hear(liveRecord("p", 1, h.now(), "a"))
	h.expect(discovery.Found, "p", "a")
	h.hear(liveRecord("p", 2, h.now().Add(-2*time.Second), "b"))
	h.expect(discovery.Updated, "p", "b")
	h.hear(liveRecord("p", 1, h.now().Add(time.Second), "a"))
	h.quiet("an older version with a later time")
}

func TestStateFreshness(t *testing.T) {
	h := newHarness(t)
	// Too old: sealed before the stale bound plus the skew allowance.
	h.hear(liveRecord("old", 1, h.now().Add(-testStale-testSkew-time.Microsecond)))
	// From too far ahead.
	h.hear(liveRecord("ahead", 1, h.now().Add(testSkew+time.Microsecond)))
	h.quiet("records outside the freshness window")
	if st := h.d.Stats(); st.Stale != 2 {
		t.Fatalf("Stale = %d, want 2", st.Stale)
	}
	// Just inside both bounds.
	h.hear(liveRecord("oldish", 1, h.now().Add(-testStale-testSkew)))
	h.expect(discovery.Found, "oldish")
	h.hear(liveRecord("aheadish", 1, h.now().Add(testSkew)))
	h.expect(discovery.Found, "aheadish")
}

func TestStateOwnRecordsIgnored(t *testing.T) {
	h := newHarness(t)
	w := liveRecord("me", 1, h.now())
	w.origin = h.d.origin
	h.hear(w)
	// An ID we announce, even sealed by someone else.
	h.d.mu.Lock()
	h.d.anns["mine"] = &announcement{}
	h.d.mu.Unlock()
	h.hear(liveRecord("mine", 1, h.now()))
	h.quiet("our own records")
	if st := h.d.Stats(); st.Own != 2 {
		t.Fatalf("Own = %d, want 2", st.Own)
	}
}

func TestStateAgeing(t *testing.T) {
	h := newHarness(t)
	w := liveRecord("p", 1, h.now(), "a")
	h.hear(w)
	found := h.expect(discovery.Found, "p", "a")

	// Heard within the bound: still there.
	h.clock.Advance(testStale)
	h.d.sweep()
	h.quiet("a peer heard exactly the stale bound ago")
	h.clock.Advance(time.Millisecond)
	h.d.sweep()
	lost := h.expect(discovery.Lost, "p")
	if lost.Time.Sub(found.Time) <= testStale {
		t.Fatalf("Lost %v after Found, want over %v", lost.Time.Sub(found.Time), testStale)
	}

	// The same version heard again while still fresh enough to accept:
	// the peer was alive after all (we could not hear it).
	h.hear(w)
	h.expect(discovery.Found, "p", "a")

	// A peer that keeps being heard, but only through its last record
	// (a replay, or an answer cached somewhere), is Lost once that record
	// is older than anything we would accept, however recently heard.
	h.clock.Advance(testSkew - time.Millisecond) // the record is now exactly stale+skew old
	h.hear(w)
	h.d.sweep()
	h.quiet("a record right at the acceptance bound, just heard")
	h.clock.Advance(time.Microsecond)
	h.d.sweep()
	h.expect(discovery.Lost, "p")
	h.d.mu.Lock()
	_, kept := h.d.peers["p"]
	h.d.mu.Unlock()
	if kept {
		t.Fatal("a peer whose newest record can no longer be accepted is still remembered")
	}
}

// Tombstones are remembered until a replay of what they buried would be
// refused as stale anyway, and no longer.
func TestStateForgetsOldTombstones(t *testing.T) {
	h := newHarness(t)
	h.hear(liveRecord("p", 1, h.now()))
	h.expect(discovery.Found, "p")
	h.hear(wireRecord{kind: kindGone, seq: 2, time: h.now(), rec: discovery.Record{ID: "p"}})
	h.expect(discovery.Lost, "p")
	h.clock.Advance(testStale + testSkew)
	h.d.sweep()
	h.d.mu.Lock()
	n := len(h.d.peers)
	h.d.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d peers remembered right at the bound, want the tombstone", n)
	}
	h.clock.Advance(time.Microsecond)
	h.d.sweep()
	h.d.mu.Lock()
	n = len(h.d.peers)
	h.d.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d peers remembered past the bound, want none", n)
	}
}

func TestStatePeerBound(t *testing.T) {
	h := newHarness(t)
	for i := range maxPeers + 3 {
		w := liveRecord(fmt.Sprint("p", i), 1, h.now())
		h.d.mu.Lock()
		h.d.observeLocked(w, h.now())
		h.d.mu.Unlock()
	}
	if st := h.d.Stats(); st.Overflow != 3 {
		t.Fatalf("Overflow = %d, want 3", st.Overflow)
	}
	if n := len(h.d.Peers()); n != maxPeers {
		t.Fatalf("%d peers known, want %d", n, maxPeers)
	}
}

// Junk from the LAN is counted and changes nothing.
func TestStateJunkIgnored(t *testing.T) {
	h := newHarness(t)
	other := mustSealer(t, secretOf(2))
	w := liveRecord("p", 1, h.now())
	foreign, _ := other.seal(&w)
	for _, txt := range [][]string{nil, {"a=junk"}, {"x"}, foreign} {
		h.d.handle(&zeroconf.ServiceEntry{Text: txt})
	}
	h.quiet("junk")
	if st := h.d.Stats(); st.Received != 4 || st.Rejected != 4 {
		t.Fatalf("stats %+v, want 4 received and 4 rejected", st)
	}
}

// The version numbers an announcer uses grow across announcements of one
// ID even when the clock does not move, so a peer that left and came back
// always outranks its own tombstone.
func TestNextSeqGrows(t *testing.T) {
	h := newHarness(t)
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	a := h.d.nextSeqLocked("x")
	b := h.d.nextSeqLocked("x")
	if a != uint64(h.now().UnixMicro()) || b != a+1 {
		t.Fatalf("sequence %d then %d, want the clock then one more", a, b)
	}
	h.clock.Advance(time.Hour)
	if c := h.d.nextSeqLocked("x"); c != uint64(h.now().UnixMicro()) {
		t.Fatalf("after an hour the sequence is %d, want the clock %d", c, h.now().UnixMicro())
	}
}
