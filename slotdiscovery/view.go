package slotdiscovery

import (
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

const (
	// followSlots bounds the slots of sampled levels whose members a peer
	// reports and follows. Together with the 31 slots of the levels read
	// whole and the samples, a steady scan stays near 45 reads, which the
	// GET budget covers within the sweep horizon (about 250 s at the
	// steady rate, under twice the stale bound): a peer can only report
	// as live what it can afford to re-read. In a larger group each peer
	// knows everyone in the shallow levels (all of them know those) and a
	// stable share of the rest, which keeps the "knows" graph connected.
	followSlots = 8
)

// view is what this peer has read of the slots and of the peers in them,
// and the rules that turn reads into Found and Lost: observe, follow,
// prune, judge and sweep. It is plain data: the Discoverer's lock guards
// it, and its methods take the time and what they need of our own
// announcements as arguments, so a test can drive one alone.
type view struct {
	staleAfter  time.Duration // an entry older than this, by its signed time, is gone
	futureBound time.Duration // a time further ahead than this is ignored
	source      string        // the Sources name of the peers reported
	tracker     *discovery.Tracker
	stats       *Stats // counts SlotsLocked and IgnoredFutureEnt

	slots    map[int]*slotView
	peers    map[string]*peerView
	followed map[int]bool         // followed slots of sampled levels (see followSlots)
	left     map[string]time.Time // our own IDs' tombstone times
}

// ours is what the view needs to know of our own announcements.
type ours interface {
	// mine reports whether id is one we announce.
	mine(id string) bool
	// holds reports whether one of our announcements writes slot i.
	holds(i int) bool
}

// slotView is what this peer knows of one slot.
type slotView struct {
	ts     pkarrclient.Timestamp // newest packet time seen within the future bound: what a write must beat
	read   time.Time             // when last read
	locked bool                  // its packet is stamped beyond the future bound
	// lockedUntil is when a locked slot's packet comes within the future
	// bound. Relays keep the newest packet, so until then nothing can
	// replace it, and reading the slot again would only find it again.
	lockedUntil time.Time
	entries     map[string]sealedEntry // newest fresh entry per ID seen here: what a write carries forward
	current     map[string]time.Time   // entry times in the packet read last: what a read-back checks
}

// peerView is the newest entry seen for another peer.
type peerView struct {
	time time.Time
	live bool
	slot int
}

// newView returns an empty view that reports peers to tracker under the
// name source and counts into stats.
func newView(staleAfter, futureBound time.Duration, source string, tracker *discovery.Tracker, stats *Stats) *view {
	return &view{
		staleAfter:  staleAfter,
		futureBound: futureBound,
		source:      source,
		tracker:     tracker,
		stats:       stats,
		slots:       make(map[int]*slotView),
		peers:       make(map[string]*peerView),
		followed:    make(map[int]bool),
		left:        make(map[string]time.Time),
	}
}

// slot returns the view of slot i, made empty if there was none.
func (v *view) slot(i int) *slotView {
	sv := v.slots[i]
	if sv == nil {
		sv = &slotView{entries: make(map[string]sealedEntry), current: make(map[string]time.Time)}
		v.slots[i] = sv
	}
	return sv
}

// lockHeld reports whether slot i was read locked and its lock still
// holds at now.
func (v *view) lockHeld(i int, now time.Time) bool {
	sv := v.slots[i]
	return sv != nil && sv.locked && now.Before(sv.lockedUntil)
}

// confirms reports whether the packet of slot i read last holds id's
// entry stamped t, or a newer one: what a read-back after our write of
// that entry looks for. Finding an older version of it means that another
// writer, working from a read made before ours landed, replaced ours.
func (v *view) confirms(i int, id string, t time.Time) bool {
	got, ok := v.slot(i).current[id]
	return ok && !got.Before(t)
}

// company reports whether slot i, as read last, holds a live entry of a
// peer other than id.
func (v *view) company(i int, id string) bool {
	for other, e := range v.slot(i).entries {
		if other != id && e.kind == kindLive {
			return true
		}
	}
	return false
}

// fresh reports whether an entry's signed time makes it count now: not
// older than the stale bound, not further ahead than the future bound.
func (v *view) fresh(t, now time.Time) bool {
	return now.Sub(t) <= v.staleAfter && t.Sub(now) <= v.futureBound
}

// observeEmpty folds a read at now that found slot i empty into the view.
func (v *view) observeEmpty(i int, now time.Time) {
	sv := v.slot(i)
	sv.read = now
	clear(sv.current)
	clear(sv.entries)
	sv.locked = false
	v.judge(i, now)
}

// observe folds a read at now of slot i, whose packet is stamped ts, into
// the view, and reports what changed to the tracker. open returns the
// packet's entries that count (opened, proofs checked); it is not called
// for a slot locked by ts. observe returns the wire size of the largest
// fresh entry read (0 if none): what a claimer may need room for.
func (v *view) observe(i int, ts pkarrclient.Timestamp, open func() []sealedEntry, now time.Time, own ours) (largest int) {
	sv := v.slot(i)
	sv.read = now
	// What a slot holds is what its newest packet holds: a write carries
	// forward exactly what it read, so an entry a full slot cut, or one
	// whose peer moved on, is not brought back from memory to push a
	// confirmed peer out.
	clear(sv.current)
	clear(sv.entries)
	// A packet stamped beyond the bound can never be overwritten (relays
	// keep the newest), so the slot is abandoned and what it holds
	// ignored: its author could otherwise pin entries that never age. Its
	// time is compared as a timestamp (up to 2^64-1 µs, which no int64
	// conversion survives) and not kept as one to beat: should a later read
	// miss it, a write stamped past it would lock the slot for everyone.
	if ts.After(now.Add(v.futureBound)) {
		if !sv.locked {
			v.stats.SlotsLocked++
		}
		sv.locked = true
		sv.lockedUntil = ts.Time().Add(-v.futureBound)
		clear(sv.entries)
		return 0
	}
	sv.locked = false
	sv.ts = max(sv.ts, ts)
	defer v.judge(i, now)
	entries := open()
	follow := v.follow(i, entries, now, own)
	for _, e := range entries {
		if e.time.Sub(now) > v.futureBound || e.since.After(e.time) {
			v.stats.IgnoredFutureEnt++
			continue
		}
		if old, ok := sv.current[e.rec.ID]; !ok || e.time.After(old) {
			sv.current[e.rec.ID] = e.time
		}
		if !v.fresh(e.time, now) {
			continue
		}
		largest = max(largest, e.wireSize())
		if old, ok := sv.entries[e.rec.ID]; !ok || e.time.After(old.time) {
			sv.entries[e.rec.ID] = e
		}
		if follow {
			v.notePeer(i, e.entry, own)
		}
	}
	v.prune(sv, now)
	return largest
}

// follow reports whether the members of slot i, just read with entries,
// are ours to report: every slot of a level read whole, our own slots,
// and up to followSlots slots of sampled levels, taken as samples find
// others there and dropped when a read finds none. Members of other slots
// still count for room and depth, but are not reported, since the budget
// would not let us re-read their slot before they aged out.
func (v *view) follow(i int, entries []sealedEntry, now time.Time, own ours) bool {
	if lo, hi := levelRange(levelOf(i)); hi-lo <= wholeLevel {
		return true
	}
	if own.holds(i) {
		return true
	}
	others := false
	for _, e := range entries {
		others = others || !own.mine(e.rec.ID) && e.kind == kindLive && v.fresh(e.time, now)
	}
	switch {
	case !others:
		delete(v.followed, i)
		return true // nothing to report but tombstones and stale entries
	case v.followed[i]:
		return true
	case len(v.followed) < followSlots:
		v.followed[i] = true
		return true
	}
	return false
}

// prune drops entries that have aged out by now, and entries superseded
// by something newer we saw elsewhere (the peer moved or left).
func (v *view) prune(sv *slotView, now time.Time) {
	for id, e := range sv.entries {
		pv := v.peers[id]
		if !v.fresh(e.time, now) || pv != nil && pv.time.After(e.time) {
			delete(sv.entries, id)
		}
	}
}

// notePeer reports another peer's entry, read in slot, to the tracker if
// it is the newest we have seen for that ID.
func (v *view) notePeer(slot int, e entry, own ours) {
	id := e.rec.ID
	if own.mine(id) {
		return
	}
	if t, ok := v.left[id]; ok && !e.time.After(t) {
		return // a copy of what we announced before leaving
	}
	pv := v.peers[id]
	if pv != nil && !e.time.After(pv.time) {
		return
	}
	if pv == nil {
		pv = &peerView{}
		v.peers[id] = pv
	}
	pv.time, pv.slot, pv.live = e.time, slot, e.kind == kindLive
	if pv.live {
		v.tracker.Upsert(discovery.Peer{Record: e.rec.Clone(), Sources: []string{v.source}, Seen: e.time})
	} else {
		v.tracker.Remove(id)
	}
}

// judge reports as Lost every peer last seen in slot i whose newest entry
// has aged out by now, a read of slot i having shown nothing newer.
// Liveness is judged on evidence: a peer whose slot the budget has not let
// us read again is not declared gone for that (see sweep).
func (v *view) judge(i int, now time.Time) {
	for id, pv := range v.peers {
		if pv.slot == i && now.Sub(pv.time) > v.staleAfter {
			v.forget(id, pv)
		}
	}
}

// forget drops a peer, reporting it Lost if it was live.
func (v *view) forget(id string, pv *peerView) {
	if pv.live {
		v.tracker.Remove(id)
	}
	delete(v.peers, id)
}

// sweep forgets the peers not seen, by now, for twice the stale bound, or
// for two scans when a scan takes longer (scanTook, the last one), even
// though their slot went unread: a peer whose slot we stopped following
// must not be held forever, and one whose slot a budget-paced scan has not
// reached yet must not be dropped. It also drops the tombstone times of
// our own IDs older than the stale bound: every copy of their entries has
// aged out by then.
func (v *view) sweep(now time.Time, scanTook time.Duration) {
	horizon := max(2*v.staleAfter, 2*scanTook)
	for id, pv := range v.peers {
		if now.Sub(pv.time) > horizon {
			v.forget(id, pv)
		}
	}
	for id, t := range v.left {
		if now.Sub(t) > v.staleAfter {
			delete(v.left, id)
		}
	}
}

// announced makes id ours: it is no longer another peer, nor one we left.
func (v *view) announced(id string) {
	delete(v.left, id)
	if pv := v.peers[id]; pv != nil {
		delete(v.peers, id)
		if pv.live {
			v.tracker.Remove(id)
		}
	}
}

// placed returns sv as it would stand without the entries that have aged
// out by now or whose peers we have since seen newer elsewhere (a peer
// that lost a race here and went on): those hold no place a newcomer could
// not take. sv itself is left as read, since such a peer may yet be back
// (a move up turned away keeps it where it was), and what a write carries
// forward is decided when the slot is read again before it.
func (v *view) placed(sv *slotView, now time.Time) *slotView {
	out := &slotView{locked: sv.locked, entries: make(map[string]sealedEntry, len(sv.entries))}
	for id, e := range sv.entries {
		pv := v.peers[id]
		if v.fresh(e.time, now) && (pv == nil || !pv.time.After(e.time)) {
			out.entries[id] = e
		}
	}
	return out
}

// knowsLive reports whether we know another peer as live.
func (v *view) knowsLive() bool {
	for _, pv := range v.peers {
		if pv.live {
			return true
		}
	}
	return false
}
