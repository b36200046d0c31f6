package slotdiscovery

import (
	"slices"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

const (
	utStale  = 150 * time.Second
	utFuture = 2 * time.Minute
)

// utOurs is what a view is told of our announcements.
type utOurs struct {
	ids   []string
	slots []int
}

func (o utOurs) mine(id string) bool { return slices.Contains(o.ids, id) }
func (o utOurs) holds(i int) bool    { return slices.Contains(o.slots, i) }

// utView is an empty view with the default bounds, reporting to a tracker
// of its own.
func utView() (*view, *discovery.Tracker, *Stats) {
	tr := discovery.NewTracker(func() time.Time { return utStart })
	st := &Stats{}
	return newView(utStale, utFuture, "slots", tr, st), tr, st
}

// utAt is utStart plus sec seconds.
func utAt(sec float64) time.Time { return utStart.Add(time.Duration(sec * float64(time.Second))) }

// utTS is a packet timestamp at t.
func utTS(t time.Time) pkarrclient.Timestamp { return pkarrclient.TimestampFromTime(t) }

// utPeer is a live entry of id written at t, 100 bytes on the wire.
func utPeer(id string, t time.Time) sealedEntry { return utEntry(id, kindLive, t, t, 100) }

// utObserve folds a read at now of slot i holding entries, in a packet
// stamped now, into v.
func utObserve(v *view, i int, now time.Time, own ours, entries ...sealedEntry) int {
	return v.observe(i, utTS(now), func() []sealedEntry { return entries }, now, own)
}

// utKnown reports whether the tracker knows id.
func utKnown(tr *discovery.Tracker, id string) bool {
	_, ok := tr.Get(id)
	return ok
}

func TestViewFresh(t *testing.T) {
	v, _, _ := utView()
	now := utAt(1000)
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{now, true},
		{now.Add(-utStale), true},
		{now.Add(-utStale - time.Nanosecond), false},
		{now.Add(utFuture), true},
		{now.Add(utFuture + time.Nanosecond), false},
	} {
		if got := v.fresh(c.at, now); got != c.want {
			t.Errorf("fresh(now%+v): %v, want %v", c.at.Sub(now), got, c.want)
		}
	}
}

func TestViewSlotAndLockHeld(t *testing.T) {
	v, _, _ := utView()
	if v.lockHeld(3, utStart) {
		t.Error("an unread slot's lock holds")
	}
	sv := v.slot(3)
	if v.slot(3) != sv || len(v.slots) != 1 || sv.entries == nil || sv.current == nil {
		t.Fatal("slot does not make one view per slot")
	}
	sv.lockedUntil = utAt(10)
	if v.lockHeld(3, utStart) {
		t.Error("an unlocked slot's lock holds")
	}
	sv.locked = true
	if !v.lockHeld(3, utAt(10).Add(-time.Nanosecond)) {
		t.Error("a lock does not hold before its end")
	}
	if v.lockHeld(3, utAt(10)) {
		t.Error("a lock holds at its end")
	}
}

// TestViewObserveLocked: a packet stamped beyond the future bound locks
// the slot until it comes within the bound; its entries are ignored (not
// even opened) and its time is not kept as one to beat. A packet exactly
// at the bound is taken.
func TestViewObserveLocked(t *testing.T) {
	v, tr, st := utView()
	now := utAt(100)
	sv := v.slot(5)
	sv.ts = utTS(utAt(50))
	sv.entries["old"] = utPeer("old", utAt(90))
	ts := utTS(now.Add(utFuture + time.Microsecond))
	opened := false
	open := func() []sealedEntry { opened = true; return []sealedEntry{utPeer("x", now)} }
	if got := v.observe(5, ts, open, now, utOurs{}); got != 0 {
		t.Errorf("a locked read reported an entry of %d bytes", got)
	}
	if opened || !sv.locked || len(sv.entries) != 0 || sv.ts != utTS(utAt(50)) || !sv.read.Equal(now) {
		t.Fatalf("after a locked read: opened=%v locked=%v entries=%d ts=%v read=%v", opened, sv.locked, len(sv.entries), sv.ts, sv.read)
	}
	if want := ts.Time().Add(-utFuture); !sv.lockedUntil.Equal(want) {
		t.Errorf("locked until %v, want %v", sv.lockedUntil, want)
	}
	if st.SlotsLocked != 1 || utKnown(tr, "x") {
		t.Errorf("SlotsLocked %d, x known %v", st.SlotsLocked, utKnown(tr, "x"))
	}
	v.observe(5, ts, open, now, utOurs{})
	if st.SlotsLocked != 1 {
		t.Errorf("a second read of the locked slot counted again: %d", st.SlotsLocked)
	}
	// Exactly at the bound: not locked, and the entries count.
	ts = utTS(now.Add(utFuture))
	if v.observe(5, ts, open, now, utOurs{}); sv.locked || !opened || sv.ts != ts || !utKnown(tr, "x") {
		t.Errorf("a packet at the bound: locked=%v opened=%v ts=%v x known %v", sv.locked, opened, sv.ts, utKnown(tr, "x"))
	}
	// An empty read unlocks too.
	sv.locked = true
	v.observeEmpty(5, now)
	if sv.locked {
		t.Error("an empty read left the slot locked")
	}
}

// TestViewObserveKeepsTheNewestTime: the packet time to beat only grows.
func TestViewObserveKeepsTheNewestTime(t *testing.T) {
	v, _, _ := utView()
	now := utAt(100)
	utObserve(v, 0, now, utOurs{})
	v.observe(0, utTS(utAt(10)), func() []sealedEntry { return nil }, now, utOurs{})
	if v.slot(0).ts != utTS(now) {
		t.Errorf("ts %v after an older packet, want %v", v.slot(0).ts, utTS(now))
	}
}

// TestViewObserveEntries: what a read keeps of each entry. The packet's
// entry times (fresh or not) are what a read-back checks; fresh entries
// are what a write carries forward and what is reported; entries from
// beyond the future bound, or claimed after they were written, are
// ignored and counted.
func TestViewObserveEntries(t *testing.T) {
	v, tr, st := utView()
	now := utAt(1000)
	stale := utEntry("stale", kindLive, now.Add(-utStale-time.Microsecond), now.Add(-time.Hour), 300)
	edge := utEntry("edge", kindLive, now.Add(-utStale), now.Add(-time.Hour), 120)
	ahead := utEntry("ahead", kindLive, now.Add(utFuture), now, 110)
	beyond := utEntry("beyond", kindLive, now.Add(utFuture+time.Microsecond), now, 400)
	backwards := utEntry("backwards", kindLive, now, now.Add(time.Microsecond), 400)
	same := utEntry("same", kindLive, now, now, 105)
	largest := utObserve(v, 7, now, utOurs{}, stale, edge, ahead, beyond, backwards, same)
	sv := v.slot(7)
	if largest != 120 {
		t.Errorf("largest fresh entry %d bytes, want 120", largest)
	}
	if st.IgnoredFutureEnt != 2 {
		t.Errorf("IgnoredFutureEnt %d, want 2", st.IgnoredFutureEnt)
	}
	for id, want := range map[string]bool{"stale": true, "edge": true, "ahead": true, "same": true, "beyond": false, "backwards": false} {
		if _, ok := sv.current[id]; ok != want {
			t.Errorf("current[%s] present %v, want %v", id, ok, want)
		}
	}
	for id, want := range map[string]bool{"stale": false, "edge": true, "ahead": true, "same": true, "beyond": false, "backwards": false} {
		if _, ok := sv.entries[id]; ok != want {
			t.Errorf("entries[%s] present %v, want %v", id, ok, want)
		}
		if utKnown(tr, id) != want {
			t.Errorf("%s reported %v, want %v", id, !want, want)
		}
	}
	if !sv.read.Equal(now) {
		t.Errorf("read at %v, want %v", sv.read, now)
	}
	// A new read replaces what the last one found.
	utObserve(v, 7, now, utOurs{}, same)
	if len(sv.current) != 1 || len(sv.entries) != 1 {
		t.Errorf("after a read of one entry: current %d, entries %d", len(sv.current), len(sv.entries))
	}
	v.observeEmpty(7, now.Add(time.Second))
	if len(sv.current) != 0 || len(sv.entries) != 0 || !sv.read.Equal(now.Add(time.Second)) {
		t.Errorf("after an empty read: current %d, entries %d, read %v", len(sv.current), len(sv.entries), sv.read)
	}
}

// TestViewObserveDuplicates: of two versions of an ID in one packet, the
// newer counts, whichever comes first.
func TestViewObserveDuplicates(t *testing.T) {
	for _, newerFirst := range []bool{true, false} {
		v, tr, _ := utView()
		now := utAt(1000)
		older, newer := utPeer("p", now.Add(-10*time.Second)), utPeer("p", now.Add(-5*time.Second))
		es := []sealedEntry{older, newer}
		if newerFirst {
			es = []sealedEntry{newer, older}
		}
		utObserve(v, 2, now, utOurs{}, es...)
		sv := v.slot(2)
		if !sv.current["p"].Equal(newer.time) || !sv.entries["p"].time.Equal(newer.time) {
			t.Errorf("newer first %v: current %v, entry %v, want %v", newerFirst, sv.current["p"], sv.entries["p"].time, newer.time)
		}
		if p, _ := tr.Get("p"); !p.Seen.Equal(newer.time) {
			t.Errorf("newer first %v: reported seen %v, want %v", newerFirst, p.Seen, newer.time)
		}
	}
}

// TestViewConfirms: the read-back check. Our entry at the time we wrote,
// or newer, confirms the write; an older version of it does not, nor a
// slot without it.
func TestViewConfirms(t *testing.T) {
	v, _, _ := utView()
	now := utAt(1000)
	wrote := now.Add(-2 * time.Second)
	if v.confirms(4, "me", wrote) {
		t.Error("an unread slot confirms")
	}
	for _, c := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"our write", wrote, true},
		{"a newer version", wrote.Add(time.Microsecond), true},
		{"an older version", wrote.Add(-time.Microsecond), false},
		{"a stale version", now.Add(-utStale - time.Second), false},
	} {
		utObserve(v, 4, now, utOurs{ids: []string{"me"}, slots: []int{4}}, utPeer("me", c.at), utPeer("other", wrote))
		if got := v.confirms(4, "me", wrote); got != c.want {
			t.Errorf("%s: confirms %v, want %v", c.name, got, c.want)
		}
	}
	utObserve(v, 4, now, utOurs{}, utPeer("other", wrote))
	if v.confirms(4, "me", wrote) {
		t.Error("a slot without our entry confirms")
	}
}

// TestViewFollowWholeLevels: every slot of a level read whole is followed,
// however many sampled slots are; level 4 (16 slots) is the last such.
func TestViewFollowWholeLevels(t *testing.T) {
	v, _, _ := utView()
	now := utAt(1000)
	for i := range followSlots {
		v.followed[100+i] = true
	}
	other := []sealedEntry{utPeer("x", now)}
	for _, i := range []int{0, 1, 2, 3, 6, 7, 14, 15, 30} {
		if !v.follow(i, other, now, utOurs{}) {
			t.Errorf("slot %d (level %d, read whole) not followed", i, levelOf(i))
		}
	}
	for _, i := range []int{31, 62, 63} {
		if v.follow(i, other, now, utOurs{}) {
			t.Errorf("slot %d (level %d, sampled) followed past the cap", i, levelOf(i))
		}
	}
	if len(v.followed) != followSlots {
		t.Errorf("%d followed slots, want %d", len(v.followed), followSlots)
	}
}

// TestViewFollowCap: sampled slots where others live are followed up to
// followSlots of them; a followed slot stays followed, our own slot is
// always followed, and a slot found with none of the others is dropped.
func TestViewFollowCap(t *testing.T) {
	v, _, _ := utView()
	now := utAt(1000)
	other := []sealedEntry{utPeer("x", now)}
	for n := range followSlots {
		if !v.follow(40+n, other, now, utOurs{}) {
			t.Fatalf("sampled slot %d of %d not followed", n+1, followSlots)
		}
	}
	if v.follow(60, other, now, utOurs{}) {
		t.Fatalf("slot %d followed beyond the cap of %d", followSlots+1, followSlots)
	}
	if !v.follow(40, other, now, utOurs{}) {
		t.Error("a followed slot was dropped while others live there")
	}
	if !v.follow(60, other, now, utOurs{slots: []int{60}}) || v.followed[60] {
		t.Error("our own slot is not followed, or took a place")
	}
	// What is not another's live, fresh entry does not make a slot worth
	// a place, and drops it.
	for _, c := range []struct {
		name string
		es   []sealedEntry
		own  utOurs
	}{
		{"nothing", nil, utOurs{}},
		{"ours", []sealedEntry{utPeer("me", now)}, utOurs{ids: []string{"me"}}},
		{"a tombstone", []sealedEntry{utEntry("t", kindTombstone, now, now, 50)}, utOurs{}},
		{"a stale entry", []sealedEntry{utPeer("s", now.Add(-utStale-time.Second))}, utOurs{}},
	} {
		v.followed[41] = true
		if !v.follow(41, c.es, now, c.own) || v.followed[41] {
			t.Errorf("%s: the slot is not read as having no one to report, or stays followed", c.name)
		}
	}
	// A freed place is taken by the next slot with others.
	if !v.follow(60, other, now, utOurs{}) || !v.followed[60] {
		t.Error("a place freed by a slot found empty was not taken")
	}
	// One of the others among ours and tombstones is enough.
	v.followed[41] = true
	mixed := []sealedEntry{utPeer("me", now), utEntry("t", kindTombstone, now, now, 50), utPeer("x", now)}
	if !v.follow(41, mixed, now, utOurs{ids: []string{"me"}}) || !v.followed[41] {
		t.Error("a followed slot with another's live entry after ours and a tombstone was dropped")
	}
}

// TestViewObserveUnfollowed: members of a sampled slot beyond the follow
// cap still count for room (and are carried forward), but are not
// reported.
func TestViewObserveUnfollowed(t *testing.T) {
	v, tr, _ := utView()
	now := utAt(1000)
	for i := range followSlots {
		v.followed[100+i] = true
	}
	if got := utObserve(v, 40, now, utOurs{}, utPeer("x", now)); got != 100 {
		t.Errorf("largest %d, want 100", got)
	}
	if utKnown(tr, "x") || len(v.slot(40).entries) != 1 {
		t.Errorf("beyond the cap: x reported %v, entries %d", utKnown(tr, "x"), len(v.slot(40).entries))
	}
}

// TestViewNotePeer: a peer is reported at its newest entry only; our own
// IDs never, nor copies of what we announced before leaving; a tombstone
// reports the peer lost.
func TestViewNotePeer(t *testing.T) {
	v, tr, _ := utView()
	own := utOurs{ids: []string{"me"}}
	v.notePeer(3, utPeer("me", utAt(10)).entry, own)
	if utKnown(tr, "me") || v.peers["me"] != nil {
		t.Error("our own ID was reported")
	}
	v.left["was-me"] = utAt(10)
	v.notePeer(3, utPeer("was-me", utAt(10)).entry, own)
	if utKnown(tr, "was-me") {
		t.Error("a copy of our entry from before we left was reported")
	}
	v.notePeer(3, utPeer("was-me", utAt(10).Add(time.Microsecond)).entry, own)
	if !utKnown(tr, "was-me") {
		t.Error("an entry newer than our tombstone was not reported")
	}

	v.notePeer(3, utPeer("p", utAt(10)).entry, own)
	p, ok := tr.Get("p")
	if !ok || !p.Seen.Equal(utAt(10)) || !slices.Equal(p.Sources, []string{"slots"}) {
		t.Fatalf("p reported %v: %+v", ok, p)
	}
	if pv := v.peers["p"]; pv == nil || pv.slot != 3 || !pv.live || !pv.time.Equal(utAt(10)) {
		t.Fatalf("p's view: %+v", v.peers["p"])
	}
	// Same time, or older: nothing changes.
	v.notePeer(9, utPeer("p", utAt(10)).entry, own)
	v.notePeer(9, utPeer("p", utAt(5)).entry, own)
	if pv := v.peers["p"]; pv.slot != 3 {
		t.Errorf("an entry no newer moved p to slot %d", pv.slot)
	}
	// Newer, elsewhere: it moved.
	v.notePeer(9, utPeer("p", utAt(20)).entry, own)
	if pv := v.peers["p"]; pv.slot != 9 || !pv.time.Equal(utAt(20)) {
		t.Errorf("p after a newer entry in 9: %+v", pv)
	}
	if p, _ := tr.Get("p"); !p.Seen.Equal(utAt(20)) {
		t.Errorf("p seen %v, want the newer time", p.Seen)
	}
	// A newer tombstone: lost, and remembered as gone.
	v.notePeer(9, utEntry("p", kindTombstone, utAt(30), utAt(0), 50).entry, own)
	if utKnown(tr, "p") || v.peers["p"] == nil || v.peers["p"].live {
		t.Errorf("after p's tombstone: known %v, view %+v", utKnown(tr, "p"), v.peers["p"])
	}
	// Its live entry older than the tombstone does not bring it back.
	v.notePeer(9, utPeer("p", utAt(25)).entry, own)
	if utKnown(tr, "p") {
		t.Error("a live entry older than the tombstone brought p back")
	}
}

// TestViewPrune: entries that aged out go, and so do those superseded by
// a newer entry of the same peer seen elsewhere; one no older stays.
func TestViewPrune(t *testing.T) {
	v, _, _ := utView()
	now := utAt(1000)
	sv := utSlot(
		utPeer("fresh", now.Add(-utStale)),
		utPeer("aged", now.Add(-utStale-time.Nanosecond)),
		utPeer("moved", now.Add(-10*time.Second)),
		utPeer("here", now.Add(-10*time.Second)),
	)
	v.peers["moved"] = &peerView{time: now.Add(-10*time.Second + time.Nanosecond), live: true, slot: 50}
	v.peers["here"] = &peerView{time: now.Add(-10 * time.Second), live: true, slot: 5}
	v.prune(sv, now)
	var got []string
	for id := range sv.entries {
		got = append(got, id)
	}
	slices.Sort(got)
	if want := []string{"fresh", "here"}; !slices.Equal(got, want) {
		t.Errorf("after prune: %v, want %v", got, want)
	}
}

// TestViewObservePrunesMoved: a peer seen newer in another slot is not
// carried forward in the slot it left.
func TestViewObservePrunesMoved(t *testing.T) {
	v, tr, _ := utView()
	now := utAt(1000)
	utObserve(v, 1, now, utOurs{}, utPeer("p", now.Add(-time.Second)))
	utObserve(v, 2, now, utOurs{}, utPeer("p", now))
	utObserve(v, 1, now, utOurs{}, utPeer("p", now.Add(-time.Second)))
	if _, ok := v.slot(1).entries["p"]; ok {
		t.Error("p's old entry in the slot it left is carried forward")
	}
	if _, ok := v.slot(1).current["p"]; !ok {
		t.Error("p's old entry is not in the packet's record of what it holds")
	}
	if !utKnown(tr, "p") || v.peers["p"].slot != 2 {
		t.Errorf("p: known %v, slot %d", utKnown(tr, "p"), v.peers["p"].slot)
	}
}

// TestViewJudge: a read of a slot that shows nothing newer of a peer last
// seen there reports it lost once its entry is older than the stale
// bound; peers of other slots are left alone.
func TestViewJudge(t *testing.T) {
	v, tr, _ := utView()
	now := utAt(1000)
	for _, p := range []struct {
		id   string
		at   time.Time
		slot int
	}{
		{"aged", now.Add(-utStale - time.Nanosecond), 3},
		{"edge", now.Add(-utStale), 3},
		{"elsewhere", now.Add(-utStale - time.Hour), 4},
	} {
		v.notePeer(p.slot, utPeer(p.id, p.at).entry, utOurs{})
	}
	v.observeEmpty(3, now)
	for id, want := range map[string]bool{"aged": false, "edge": true, "elsewhere": true} {
		if utKnown(tr, id) != want || (v.peers[id] != nil) != want {
			t.Errorf("%s after judging slot 3: known %v, viewed %v, want %v", id, utKnown(tr, id), v.peers[id] != nil, want)
		}
	}
	// A read that finds the slot with entries judges too.
	utObserve(v, 4, now, utOurs{}, utPeer("new", now))
	if utKnown(tr, "elsewhere") {
		t.Error("a read of slot 4 did not judge the peer last seen there")
	}
}

// TestViewForget: a live peer forgotten is reported lost; a gone one is
// just dropped.
func TestViewForget(t *testing.T) {
	v, tr, _ := utView()
	v.notePeer(1, utPeer("p", utAt(10)).entry, utOurs{})
	v.forget("p", v.peers["p"])
	if utKnown(tr, "p") || v.peers["p"] != nil {
		t.Error("a forgotten live peer is still known")
	}
	v.peers["q"] = &peerView{time: utAt(10), slot: 1}
	tr.Upsert(discovery.Peer{Record: discovery.Record{ID: "q"}, Seen: utAt(10)})
	v.forget("q", v.peers["q"])
	if !utKnown(tr, "q") || v.peers["q"] != nil {
		t.Error("forgetting a peer already gone reported it lost again")
	}
}

// TestViewSweepHorizon: peers not seen for twice the stale bound are
// forgotten though their slot went unread, or for two scans when a scan
// takes longer; tombstone times of our own IDs go after the stale bound.
func TestViewSweepHorizon(t *testing.T) {
	now := utAt(10000)
	for _, c := range []struct {
		name     string
		took     time.Duration
		horizon  time.Duration
		leftEdge time.Duration
	}{
		{"short scans", time.Second, 2 * utStale, utStale},
		{"scans of exactly the stale bound", utStale, 2 * utStale, utStale},
		{"long scans", utStale + time.Second, 2*utStale + 2*time.Second, utStale},
	} {
		v, tr, _ := utView()
		v.notePeer(100, utPeer("edge", now.Add(-c.horizon)).entry, utOurs{})
		v.notePeer(100, utPeer("past", now.Add(-c.horizon-time.Nanosecond)).entry, utOurs{})
		v.left["left-edge"] = now.Add(-c.leftEdge)
		v.left["left-past"] = now.Add(-c.leftEdge - time.Nanosecond)
		v.sweep(now, c.took)
		if !utKnown(tr, "edge") || utKnown(tr, "past") || v.peers["past"] != nil {
			t.Errorf("%s: at the horizon known %v; past it known %v", c.name, utKnown(tr, "edge"), utKnown(tr, "past"))
		}
		if _, ok := v.left["left-edge"]; !ok {
			t.Errorf("%s: a tombstone time at the stale bound was dropped", c.name)
		}
		if _, ok := v.left["left-past"]; ok {
			t.Errorf("%s: a tombstone time past the stale bound was kept", c.name)
		}
	}
}

// TestViewAnnounced: an ID we announce stops being another peer (reported
// lost) and one we left.
func TestViewAnnounced(t *testing.T) {
	v, tr, _ := utView()
	v.notePeer(1, utPeer("p", utAt(10)).entry, utOurs{})
	v.left["p"] = utAt(5)
	v.announced("p")
	if utKnown(tr, "p") || v.peers["p"] != nil || len(v.left) != 0 {
		t.Errorf("after announcing p: known %v, viewed %v, left %v", utKnown(tr, "p"), v.peers["p"] != nil, v.left)
	}
	v.peers["gone"] = &peerView{time: utAt(10), slot: 1}
	tr.Upsert(discovery.Peer{Record: discovery.Record{ID: "gone"}, Seen: utAt(10)})
	v.announced("gone")
	if !utKnown(tr, "gone") || v.peers["gone"] != nil {
		t.Error("announcing an ID last seen leaving reported it lost")
	}
	v.announced("never") // nothing to do
}

// TestViewObserveOursNotReported: our own entry in a slot counts for the
// read-back and for room, but is not reported.
func TestViewObserveOursNotReported(t *testing.T) {
	v, tr, _ := utView()
	now := utAt(1000)
	own := utOurs{ids: []string{"me"}, slots: []int{50}}
	utObserve(v, 50, now, own, utPeer("me", now))
	if utKnown(tr, "me") || !v.confirms(50, "me", now) || len(v.slot(50).entries) != 1 {
		t.Errorf("our entry: reported %v, confirmed %v, entries %d", utKnown(tr, "me"), v.confirms(50, "me", now), len(v.slot(50).entries))
	}
	if v.followed[50] {
		t.Error("our own slot took a follow place")
	}
}

// TestViewOurs: the registry of our announcements tells the view and the
// scanner which IDs are ours, which slots they write (none while
// claiming) and since when each claims.
func TestViewOurs(t *testing.T) {
	as := announcements{
		"a": &announcement{slot: 0},
		"b": &announcement{slot: 40},
		"c": &announcement{slot: -1, claiming: utAt(5)},
	}
	var own ours = as
	if !own.mine("a") || !own.mine("c") || own.mine("x") {
		t.Error("mine")
	}
	if !own.holds(0) || !own.holds(40) || own.holds(1) || own.holds(-2) {
		t.Error("holds")
	}
	slots := as.slots()
	slices.Sort(slots)
	if !slices.Equal(slots, []int{0, 40}) {
		t.Errorf("slots %v, want [0 40]", slots)
	}
	var claiming []time.Time
	for _, c := range as.claiming() {
		if !c.IsZero() {
			claiming = append(claiming, c)
		}
	}
	if len(as.claiming()) != 3 || len(claiming) != 1 || !claiming[0].Equal(utAt(5)) {
		t.Errorf("claiming %v", as.claiming())
	}
}
