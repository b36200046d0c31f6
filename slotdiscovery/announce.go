package slotdiscovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// Announce implements discovery.Discoverer. The announcement claims a slot
// in the background (the fast scan phase restarts with it), then rewrites
// its entry every republish interval until ctx ends, Leave, or Close; at
// the end it writes a tombstone so others see it leave at their next
// read.
//
// A record whose ID is a public key (see WithIDSchemes) is announced only
// if the WithSigner signer holds that key: otherwise Announce fails at
// once with an error wrapping discovery.ErrNoKey.
func (d *Discoverer) Announce(ctx context.Context, rec discovery.Record) (discovery.Announcement, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	rec = rec.Clone()
	if err := d.checkRecord(rec); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, discovery.ErrClosed
	}
	if _, dup := d.anns[rec.ID]; dup {
		return nil, fmt.Errorf("%w: %q", discovery.ErrAlreadyAnnounced, rec.ID)
	}
	now := d.stamp()
	actx, cancel := context.WithCancel(ctx)
	a := &announcement{
		d:       d,
		rec:     rec,
		since:   now,
		slot:    -1,
		held:    -1,
		ctx:     actx,
		cancel:  cancel,
		update:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		endDone: make(chan struct{}),
	}
	d.anns[rec.ID] = a
	d.view.announced(rec.ID)
	d.scanner.fastUntil = now.Add(d.cfg.fastPhase)
	d.budget.fast(now, false)
	d.cfg.logger.Debug("announce")
	d.wg.Add(1)
	go a.run()
	context.AfterFunc(actx, func() { go a.end() })
	return a, nil
}

// announcements are a Discoverer's running announcements by ID. The
// view and the scanner see them through its methods, so that their tests
// need no announcement.
type announcements map[string]*announcement

// mine implements ours.
func (as announcements) mine(id string) bool {
	_, ok := as[id]
	return ok
}

// holds implements ours.
func (as announcements) holds(i int) bool {
	for _, a := range as {
		if a.slot == i {
			return true
		}
	}
	return false
}

// slots returns the slots our announcements write (none while claiming).
func (as announcements) slots() []int {
	var out []int
	for _, a := range as {
		if a.slot >= 0 {
			out = append(out, a.slot)
		}
	}
	return out
}

// unjudged reports whether one of our announcements claims a slot of a
// forming group and has not read its first write back yet.
func (as announcements) unjudged() bool {
	for _, a := range as {
		if a.unjudged {
			return true
		}
	}
	return false
}

// budgetWaiting reports whether one of our announcements waits for a
// token of PUTs or of the reads around our writes.
func (as announcements) budgetWaiting() bool {
	for _, a := range as {
		if a.budgetWait {
			return true
		}
	}
	return false
}

// held reports whether a read-back confirmed one of our announcements in
// its slot.
func (as announcements) held() bool {
	for _, a := range as {
		if a.held >= 0 {
			return true
		}
	}
	return false
}

// claiming returns when each announcement still claiming began (a zero
// time for one that holds a slot).
func (as announcements) claiming() []time.Time {
	out := make([]time.Time, 0, len(as))
	for _, a := range as {
		out = append(out, a.claiming)
	}
	return out
}

// announcement is one running Announce.
type announcement struct {
	d      *Discoverer
	ctx    context.Context // ends with Leave, the caller's ctx, or Close
	cancel context.CancelFunc
	update chan struct{}
	done   chan struct{} // closed when run returns

	// Guarded by d.mu.
	rec  discovery.Record
	slot int // where our entry is, or -1 while claiming
	held int // the slot a read-back last confirmed, or -1
	// claiming is when we began looking for a slot, zero while we hold
	// one; refused counts the slots that turned us away since.
	claiming time.Time
	refused  int
	// stayUntil is when a move up may be tried again after one failed
	// (written and read by run alone).
	stayUntil time.Time
	spread    bool // the claim under way picked a slot of a forming group
	// respread marks a spread claim made after a full slot of a forming
	// group turned us away: it neither waits nor holds the scans back as
	// a first claim does. It means nothing once spread is cleared.
	respread bool
	// unjudged is set from a spread claim until its first write is read
	// back (or publish gives up): the read-back tells whether the group
	// is busy (see settle), and scans wait for it.
	unjudged bool
	// budgetWait is set while a write waits for a PUT token, or, once a
	// write of the claim under way was lost, for a token of the reads
	// around our writes (see ownRead).
	budgetWait bool
	// lostWrite is set from a write of the claim under way that a
	// read-back showed lost until the claim holds a slot.
	lostWrite bool
	ended     bool
	// since is when our entry came to its slot, the order a full slot
	// keeps; written the time of our last accepted write.
	since, written time.Time

	endDone chan struct{} // closed when end has written the tombstone
}

// Record implements discovery.Announcement.
func (a *announcement) Record() discovery.Record {
	a.d.mu.Lock()
	defer a.d.mu.Unlock()
	return a.rec.Clone()
}

// Update implements discovery.Announcement: the new record is written at
// once (within the PUT budget).
func (a *announcement) Update(ctx context.Context, rec discovery.Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if err := a.d.checkRecord(rec); err != nil {
		return err
	}
	a.d.mu.Lock()
	defer a.d.mu.Unlock()
	if a.ended {
		return discovery.ErrLeft
	}
	if rec.ID != a.rec.ID {
		return fmt.Errorf("%w: Update cannot change the ID (%q to %q)", discovery.ErrInvalidRecord, a.rec.ID, rec.ID)
	}
	a.rec = rec.Clone()
	select {
	case a.update <- struct{}{}:
	default:
	}
	return nil
}

// Leave implements discovery.Announcement: it stops the announcement and
// waits, within ctx, for its tombstone to be written. If ctx ends first it
// returns an error wrapping ctx's; the tombstone write goes on in the
// background, within the leave bound (5 s), as it would for Close or the
// announcement's own context: a short ctx means "do not wait", not "do not
// tell the others", and Close still waits for it. It is idempotent.
func (a *announcement) Leave(ctx context.Context) error {
	// end is shared with Close and the announcement's context, and only
	// its first caller writes: run it apart so that whoever started it,
	// this call waits no longer than ctx.
	go a.end()
	select {
	case <-a.endDone:
		return nil
	case <-ctx.Done():
		select {
		case <-a.endDone: // both ready: the tombstone is written
			return nil
		default:
		}
		return fmt.Errorf("slotdiscovery: leave: the tombstone is still being written (it goes on within the leave bound): %w", ctx.Err())
	}
}

// end stops the announcement and writes its tombstone, once. Every caller
// returns when the tombstone is written or the leave timeout has passed.
func (a *announcement) end() {
	d := a.d
	d.mu.Lock()
	first := !a.ended
	a.ended = true
	d.mu.Unlock()
	if !first {
		// A channel, not a sync.Once: a caller blocked on a Once's mutex
		// is not durably blocked, and would stall a testing/synctest
		// bubble while the first caller waits on the bubble's clock.
		<-a.endDone
		return
	}
	defer close(a.endDone)
	a.cancel()
	<-a.done
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.leaveTimeout)
	defer cancel()
	d.mu.Lock()
	slot, rec, since := a.slot, a.rec, a.since
	d.mu.Unlock()
	var tombTime time.Time
	if slot >= 0 {
		tombTime = a.bury(ctx, slot, rec.ID, since)
	}
	d.mu.Lock()
	delete(d.anns, rec.ID)
	if tombTime.IsZero() {
		tombTime = d.now()
	}
	d.view.left[rec.ID] = tombTime
	d.mu.Unlock()
}

// bury writes our tombstone into slot the way publish writes an entry:
// read, write, read back, again if a racing writer dropped it, until ctx
// ends. A writer that read the slot just before the tombstone landed
// writes our live entry back, and we would then age out like a crashed
// peer instead of leaving at once. It returns the tombstone's time.
func (a *announcement) bury(ctx context.Context, slot int, id string, since time.Time) time.Time {
	d := a.d
	tomb := entry{kind: kindTombstone, since: since, rec: discovery.Record{ID: id}}
	tomb.time = d.stamp()
	if err := d.sign(&tomb, d.group.SlotKey(slot).PublicKey()); err != nil {
		d.cfg.logger.Debug("tombstone not written", "slot", slot, "err", err)
		return tomb.time
	}
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		err := d.readSlotWith(ctx, slot, d.budget.ownGets)
		if err == nil {
			err = d.budget.take(ctx, d.budget.puts)
		}
		if err == nil {
			err = a.write(ctx, slot, tomb)
		}
		if err == nil {
			err = d.sleep(ctx, d.readBackDelay())
		}
		if err == nil {
			err = d.readBack(ctx, slot)
		}
		if err != nil {
			d.cfg.logger.Debug("tombstone not written", "slot", slot, "err", err)
			continue
		}
		d.mu.Lock()
		done := d.view.confirms(slot, id, tomb.time)
		d.mu.Unlock()
		if done {
			break
		}
	}
	return tomb.time
}

func (a *announcement) run() {
	d := a.d
	defer d.wg.Done()
	defer close(a.done)
	ctx := a.ctx
	for ctx.Err() == nil {
		d.mu.Lock()
		slot, held := a.slot, a.held
		d.mu.Unlock()
		if slot < 0 {
			d.mu.Lock()
			if a.claiming.IsZero() {
				a.claiming = d.now()
			}
			d.mu.Unlock()
			s, err := a.claim(ctx)
			if err != nil {
				d.cfg.logger.Debug("claim failed", "err", err)
				if d.sleep(ctx, d.rnd.between(time.Second, 3*time.Second)) != nil {
					return
				}
				continue
			}
			slot = s
		} else if up := a.shallower(slot); up >= 0 && !d.now().Before(a.stayUntil) {
			// A peer that went deep while the levels above were full moves
			// up once they have room, so scans that stop at the last full
			// level still reach it. The move costs nothing extra: it is
			// this period's write, made elsewhere.
			d.cfg.logger.Debug("moving up", "from", slot, "to", up)
			slot = up
		}
		// The slot is ours to tombstone from the first write on, before the
		// read-back confirms it: a peer that leaves mid-claim may already
		// have been seen.
		d.mu.Lock()
		spread := a.spread && !a.respread
		d.mu.Unlock()
		if slot != held && spread {
			// Peers that start together would write together: a random
			// wait spreads their writes, so most find the slot as the
			// writer before them left it, and few lose a write to a race.
			if d.sleep(ctx, d.rnd.between(0, d.cfg.joinWait)) != nil {
				return
			}
		}
		d.mu.Lock()
		heldSince := a.since
		if slot != a.slot || slot != held {
			// An entry's since is when it came to this slot: a full slot
			// keeps its longest-standing entries, and one that moves in
			// is the newest there whenever it joined the group.
			a.since = d.stamp()
		}
		a.slot = slot
		d.mu.Unlock()
		if !a.publish(ctx, slot) {
			if ctx.Err() != nil {
				return // ending: keep the slot, so end writes its tombstone
			}
			if held >= 0 && slot != held {
				a.stay(held, heldSince)
				continue
			}
			d.mu.Lock()
			if a.held == slot {
				d.stats.LostClaims++
			}
			// The next claim decides anew whether it spreads: a contended
			// one does not, and must not wait as if it did.
			a.slot, a.held, a.spread = -1, -1, false
			// A slot found locked says nothing of how many others are
			// claiming: only a race lost or a full slot makes the claim
			// contended.
			if !d.view.slot(slot).locked {
				a.refused++
			}
			d.mu.Unlock()
			continue
		}
		d.mu.Lock()
		if held != slot {
			d.stats.Claims++
			if held >= 0 {
				d.stats.Moves++
			}
		}
		a.held, a.claiming, a.refused, a.spread, a.lostWrite = slot, time.Time{}, 0, false, false
		d.mu.Unlock()
		d.scanSoon()
		// The period runs from the write, not from the read-back: readers
		// age an entry by the time it carries, so time spent confirming
		// must not stretch the gap between two versions.
		d.mu.Lock()
		next := a.written.Add(d.rnd.jitter(d.cfg.republish, republishJitter)).Sub(d.now())
		d.mu.Unlock()
		t := d.cfg.clock.NewTimer(max(next, 0))
		select {
		case <-t.Chan():
		case <-a.update:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// respreadTries is how many refusals a claim in a forming group takes
// before it walks the levels from the top (see claim): past that, the join
// levels are full, and the walk goes past them.
const respreadTries = 3

// republishJitter spreads republishes so peers that joined together do not
// write together for ever.
const republishJitter = 0.08

// claim finds a slot with room for our entry: the lowest level where one
// of the slots read has room, a random one among those, so peers joining
// together spread over a level rather than all racing for its first slot.
func (a *announcement) claim(ctx context.Context) (int, error) {
	d := a.d
	self, err := a.sealed(0)
	if err != nil {
		return -1, err
	}
	d.mu.Lock()
	d.room.see(self.wireSize())
	d.mu.Unlock()
	// A claim trusts the scan's reads up to two steady periods old and
	// reads only what the scan has not: the write reads its slot first
	// anyway and refuses a full one, and re-reading whole levels would
	// spend the budget the scan needs, leaving the peer in no slot for
	// longer. A sampled level is judged by as many fresh reads as a scan
	// samples, whichever slots they were: in a large group the scan has
	// read most of a level already, and a new random sample each try
	// would cost a level's worth of GETs per level.
	fresh := 2 * d.cfg.scan
	d.mu.Lock()
	refused := a.refused
	d.mu.Unlock()
	contended := refused > 0
	pool := a.spreadPool(self, fresh, d.cfg.joinLevels)
	if len(pool) > 0 && (!contended || refused < respreadTries) {
		d.mu.Lock()
		// A claimer turned away by a full slot of a forming group spreads
		// again: the level walk below would send every such claimer to
		// the first slot with room, and they would lose their writes
		// there to each other. It writes at once, and its scans go on
		// reading meanwhile: the group it joins is written already.
		a.spread, a.respread = true, contended
		if !contended {
			a.unjudged = true
			d.settle(a.claiming, false)
		}
		d.mu.Unlock()
		return pool[d.rnd.intN(len(pool))], nil
	}
	var fallback []int
	passed := false // whether a level with some room was passed over
	for l := 0; l <= maxLevel; l++ {
		lo, hi := levelRange(l)
		need := hi - lo
		if need > wholeLevel {
			need = sampleSize
		}
		known, room, mine := a.survey(l, self, fresh, contended)
		if mine >= 0 {
			return mine, nil
		}
		if len(room) == 0 && len(known) < need {
			idx := a.unread(l, known, need-len(known))
			// Below a level passed over, the slot to take is the first
			// with room (below), so the reads go in slot order, and the
			// first with room ends them (see readEnough).
			if passed {
				slices.Sort(idx)
			}
			enough := func() bool { return a.readEnough(l, self, fresh, contended) }
			if d.readSlotsUntil(ctx, idx, enough) == 0 && ctx.Err() != nil {
				return -1, ctx.Err()
			}
			known, room, mine = a.survey(l, self, fresh, contended)
			if mine >= 0 {
				return mine, nil
			}
			if len(known) == 0 {
				return -1, fmt.Errorf("%w: no read of level %d succeeded", ErrNoSlot, l)
			}
		}
		// A claimer turned away once is racing many others for the last
		// places of a nearly full level: it tries the first level where
		// most slots read have room instead, and moves up later when
		// room shows above (see shallower).
		if len(room) > 0 && contended && 2*len(room) < len(known) && l < maxLevel {
			if fallback == nil {
				fallback = room
			}
			passed = true
			continue
		}
		if len(room) > 0 {
			if m := a.meetingPoint(l); !contended && slices.Contains(room, m) {
				return m, nil
			}
			if passed {
				// Below a level that still has room, scans do not go
				// unless they know someone there, and their probe of the
				// next level reads its first slot: the first slot with
				// room is where a probe finds us, and once one scanner
				// knows of us, it reads our level whole.
				return slices.Min(room), nil
			}
			return room[d.rnd.intN(len(room))], nil
		}
	}
	if len(fallback) > 0 {
		return fallback[d.rnd.intN(len(fallback))], nil
	}
	return -1, ErrNoSlot
}

// readEnough reports whether a claim reading level l has read enough of
// it to choose: a slot that still holds our entry, or room found. The
// level's unread slots are read in random order, so the first found with
// room are a random few of them, and at the paced rate each further read
// costs half a second. A contended claim reads on while most slots it
// read are full: it may pass the level over (see claim).
func (a *announcement) readEnough(l int, self sealedEntry, fresh time.Duration, contended bool) bool {
	known, room, mine := a.survey(l, self, fresh, contended)
	return mine >= 0 || len(room) > 0 && (!contended || 2*len(room) >= len(known))
}

// survey returns, of level l, the slots read within fresh (known), those
// among them with room for self, and a slot that still holds our entry
// from before a restart and keeps room for it (-1 if none). For a
// contended claim, slots found full within the stale bound count as
// known too: a full slot frees room only as its members leave or age out,
// so re-reading it at every try would spend the reads that find the room.
func (a *announcement) survey(l int, self sealedEntry, fresh time.Duration, contended bool) (known, room []int, mine int) {
	d := a.d
	lo, hi := levelRange(l)
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	mine = -1
	for i := lo; i < hi; i++ {
		sv := d.view.slots[i]
		if sv == nil || sv.read.IsZero() {
			continue
		}
		if age := now.Sub(sv.read); age > fresh && !d.view.lockHeld(i, now) &&
			(!contended || age > d.cfg.staleAfter || !d.room.full(d.view.slot(i))) {
			continue
		}
		known = append(known, i)
		if sv.locked || !d.room.free(d.view.slot(i), self, 0) {
			continue
		}
		// By the packet read last: a remembered entry of ours may be one
		// a full slot cut.
		if _, ok := sv.current[self.rec.ID]; ok && mine < 0 {
			mine = i
		}
		room = append(room, i)
	}
	return known, room, mine
}

// meetingPoint returns the slot of sampled level l where its first
// claimers go, or -1 for a level read whole (its claimers spread at
// random, which keeps peers that join together apart).
func (a *announcement) meetingPoint(l int) int {
	if lo, hi := levelRange(l); hi-lo <= wholeLevel {
		return -1
	}
	a.d.mu.Lock()
	defer a.d.mu.Unlock()
	if m := a.d.scanner.meeting(a.d.view, l, 1, a.d.now()); len(m) > 0 {
		return m[0]
	}
	return -1
}

// unread returns up to n distinct slots of level l outside known: the
// level's meeting point first, then at random.
func (a *announcement) unread(l int, known []int, n int) []int {
	lo, hi := levelRange(l)
	n = min(n, hi-lo-len(known))
	out := make([]int, 0, n)
	if m := a.meetingPoint(l); m >= 0 && n > 0 && !slices.Contains(known, m) {
		out = append(out, m)
	}
	// Rejection sampling: known holds at most a sample's worth of a large
	// level, so few draws are wasted, and no permutation of a level of
	// thousands of slots is built.
	for len(out) < n {
		i := lo + a.d.rnd.intN(hi-lo)
		if !slices.Contains(known, i) && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	return out
}

// shallower returns a slot in a level above slot's that a recent scan
// found with room for us and one more, or -1. The margin keeps two deep
// peers from squeezing into the last place and one bouncing back.
func (a *announcement) shallower(slot int) int {
	d := a.d
	l := levelOf(slot)
	if l == 0 {
		return -1
	}
	self, err := a.sealed(0)
	if err != nil {
		return -1
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	fresh := 2 * d.cfg.scan
	for up := 0; up < l; up++ {
		lo, hi := levelRange(up)
		var room []int
		for i := lo; i < hi; i++ {
			sv := d.view.slots[i]
			if sv == nil || sv.locked || sv.read.IsZero() || now.Sub(sv.read) > fresh {
				continue
			}
			if d.room.free(d.view.slot(i), self, d.room.need()) {
				room = append(room, i)
			}
		}
		if len(room) > 0 {
			return room[d.rnd.intN(len(room))]
		}
	}
	return -1
}

// sealed returns our current live entry sealed for slot i.
func (a *announcement) sealed(i int) (sealedEntry, error) {
	d := a.d
	d.mu.Lock()
	e := entry{kind: kindLive, time: d.stamp(), since: a.since, rec: a.rec.Clone()}
	d.mu.Unlock()
	key := d.group.SlotKey(i).PublicKey()
	if err := d.sign(&e, key); err != nil {
		return sealedEntry{}, err
	}
	s, err := d.group.seal(&e, key)
	return sealedEntry{entry: e, sealed: s}, err
}

// publish writes our entry into slot and reads it back, until the read
// shows it or the slot turns out to have no room for us. A 204 proves
// nothing (n0's relay drops an older packet silently) and no relay offers
// compare-and-swap any more, so only the read-back tells.
func (a *announcement) publish(ctx context.Context, slot int) bool {
	d := a.d
	defer func() {
		// Whatever became of the write, the scans wait for it no more.
		d.mu.Lock()
		a.unjudged = false
		d.mu.Unlock()
	}()
	fresh := false // whether the last read of slot is the one to merge
	for attempt := 0; attempt < 4 && ctx.Err() == nil; attempt++ {
		// Read just before writing, so the entries carried forward are the
		// newest versions: a write from a memory one scan old would roll
		// back every peer that refreshed since. After a failed read-back,
		// that read-back is the fresh read.
		if !fresh {
			if err := a.ownRead(ctx, slot); err != nil {
				continue
			}
		}
		self, err := a.sealed(slot)
		if err != nil {
			return false
		}
		// A slot with no room for us is refused before a PUT token is
		// spent: a newcomer walking past full slots must not wait out the
		// PUT budget at each one.
		if _, _, err := a.compose(slot, self.entry); errors.Is(err, errFull) || errors.Is(err, errLocked) {
			d.cfg.logger.Debug("slot refused our entry", "slot", slot, "err", err)
			return false
		}
		var waited bool
		err = a.awaitBudget(func() (err error) {
			waited, err = d.budget.takeWaited(ctx, d.budget.puts)
			return err
		})
		if err != nil {
			return false
		}
		if waited {
			// The budget made us wait, so our read is old: read again, or
			// the write would roll back whoever wrote meanwhile.
			if err := a.ownRead(ctx, slot); err != nil {
				fresh = false
				continue
			}
			if self, err = a.sealed(slot); err != nil {
				return false
			}
		}
		switch err := a.write(ctx, slot, self.entry); {
		case errors.Is(err, errFull), errors.Is(err, errLocked):
			d.cfg.logger.Debug("slot refused our entry", "slot", slot, "err", err)
			return false
		case err != nil:
			d.cfg.logger.Debug("slot write failed", "slot", slot, "err", err)
			fresh = false
			if d.sleep(ctx, d.rnd.between(d.cfg.verifyMin, 2*d.cfg.verifyMax)) != nil {
				return false
			}
			continue
		}
		if d.sleep(ctx, a.firstReadBack(d.readBackDelay())) != nil {
			return false
		}
		// The read-back reads our slot alone, on the announcement's own
		// budget: waiting for a whole scan would stretch the time between
		// two versions of our entry by a scan's length.
		if err := d.readBack(ctx, slot); err != nil {
			fresh = false
			continue
		}
		fresh = true
		d.mu.Lock()
		held := d.view.confirms(slot, self.rec.ID, self.time)
		if !held {
			d.stats.Collisions++
			a.lostWrite = true
		}
		if a.spread && (!held || d.view.company(slot, self.rec.ID)) {
			// Others write beside us: a group that size loses races, and
			// its losers write again after their read-backs.
			d.settle(a.claiming, true)
		}
		a.unjudged = false
		d.mu.Unlock()
		d.cfg.logger.Debug("read-back", "slot", slot, "held", held, "attempt", attempt)
		if held {
			return true
		}
	}
	return false
}

// compose seals e for slot and builds the slot's next packet: e merged
// into what the slot held when read last. It fails with errFull when e
// does not fit beside the live entries there, errLocked when the slot is
// locked.
func (a *announcement) compose(slot int, e entry) (*pkarrclient.SignedPacket, sealedEntry, error) {
	d := a.d
	sk := d.group.SlotKey(slot)
	s, err := d.group.seal(&e, sk.PublicKey())
	if err != nil {
		return nil, sealedEntry{}, err
	}
	self := sealedEntry{entry: e, sealed: s}
	d.mu.Lock()
	sv := d.view.slot(slot)
	if sv.locked {
		d.mu.Unlock()
		return nil, self, errLocked
	}
	kept, in := d.room.merge(sv, self)
	// A writer never pushes out a live entry it just read: if ours does
	// not fit beside them all, ours is the one that moves on. Otherwise two
	// peers that raced for the last place could each confirm, and the one
	// retrying later would cut the one already confirmed.
	full := !in || d.room.cutsLive(sv, kept, self.rec.ID)
	// Our write must beat what the slot holds and stay within our own
	// future bound, or it would lock the slot itself; a slot where both
	// cannot hold (its packet at the bound, or at the last timestamp,
	// where Next saturates rather than wrap to 0) is locked for us until
	// a read shows otherwise.
	next, _ := sv.ts.Next()
	ts := max(d.stamper.Next(), next)
	if ts.After(d.now().Add(d.cfg.futureBound)) {
		sv.locked = true
		d.mu.Unlock()
		return nil, self, errLocked
	}
	d.mu.Unlock()
	if full {
		return nil, self, errFull
	}
	p, err := buildSlot(sk, ts, kept)
	for errors.Is(err, pkarrclient.ErrPacketTooLarge) && len(kept) > 1 {
		// The size estimate was short: drop the lowest-priority entry
		// that is not ours and try again.
		j := len(kept) - 1
		if kept[j].rec.ID == self.rec.ID {
			j--
		}
		kept = slices.Delete(kept, j, j+1)
		p, err = buildSlot(sk, ts, kept)
	}
	return p, self, err
}

// write publishes slot with e merged into what we know of it. The caller
// holds a PUT token.
func (a *announcement) write(ctx context.Context, slot int, e entry) error {
	d := a.d
	p, self, err := a.compose(slot, e)
	if err != nil {
		return err
	}
	ts := p.Timestamp()
	d.mu.Lock()
	sv := d.view.slot(slot)
	d.mu.Unlock()
	began := d.now()
	_, err = d.client.Publish(ctx, p)
	d.mu.Lock()
	d.stats.Puts++
	if err == nil {
		d.rtt = d.now().Sub(began)
	}
	if err == nil {
		if e.rec.ID == a.rec.ID {
			a.written = e.time
		}
		sv.ts = max(sv.ts, ts)
		if old, ok := sv.entries[e.rec.ID]; !ok || e.time.After(old.time) {
			sv.entries[e.rec.ID] = self
		}
	}
	if errors.Is(err, pkarrclient.ErrNotMostRecent) {
		d.stats.Conflicts++
		sv.read = time.Time{} // someone wrote after our read: read again before the next try
	}
	d.mu.Unlock()
	if err != nil {
		d.backoff(err)
	}
	return err
}

// ownRead is the read of our slot just before a write, on the budget of
// the reads around our writes. Its wait for a token lets the scans read
// on once a write of the claim was lost, as a wait for a PUT token does
// (see awaitBudget).
func (a *announcement) ownRead(ctx context.Context, slot int) error {
	d := a.d
	take := func() error { return d.budget.take(ctx, d.budget.ownGets) }
	d.mu.Lock()
	// A claim walking full slots waits here too, but reads its way, and
	// in a group that fills the join levels the scans' reads would slow
	// its claims: only a loser of a race in a smaller group lets them on.
	scansRead := a.lostWrite && !d.joinLevelsMostlyFull()
	d.mu.Unlock()
	var err error
	if scansRead {
		err = a.awaitBudget(take)
	} else {
		err = take()
	}
	if err != nil {
		return err
	}
	return d.fetchSlot(ctx, slot, pkarrclient.NetworkOnly())
}

// joinLevelsMostlyFull reports whether more than half the slots of the
// join levels were last read full. The caller holds d.mu.
func (d *Discoverer) joinLevelsMostlyFull() bool {
	_, hi := levelRange(max(d.cfg.joinLevels, 1) - 1)
	full := 0
	for i := 0; i < hi; i++ {
		if sv := d.view.slots[i]; sv != nil && !sv.read.IsZero() && d.room.full(sv) {
			full++
		}
	}
	return 2*full > hi
}

// awaitBudget runs take, a wait for a token of our writes' budgets, with
// budgetWait set: meanwhile the scans read on (see joining). A claim that
// lost its writes may wait seconds for a token, and what the scans read
// meanwhile finds its group.
func (a *announcement) awaitBudget(take func() error) error {
	d := a.d
	d.mu.Lock()
	a.budgetWait = true
	d.mu.Unlock()
	err := take()
	d.mu.Lock()
	a.budgetWait = false
	d.mu.Unlock()
	return err
}

// firstReadBack shortens wait, the read-back delay after a write, for
// the first write of a claim in a forming group that found no one there
// and came late in the join wait: its read-back goes no later than
// settleAt. Such a claimer is likely in a small group, where the read-back
// times the first full scan (see joining) and the peer that wrote last
// finds the others; the random delay spreads the retries of a large
// group's losers, which know of company when they write.
func (a *announcement) firstReadBack(wait time.Duration) time.Duration {
	d := a.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if !a.unjudged || now.Sub(a.claiming) < d.cfg.joinWait/2 || d.view.knowsLive() {
		return wait
	}
	return min(wait, max(d.cfg.verifyMin, 2*d.rtt, d.settleAt.Sub(now)))
}

// readBackDelay returns how long to wait between a write and its
// read-back: random within the configured range, and at least twice the
// round trip our last write took (see WithVerifyDelay).
func (d *Discoverer) readBackDelay() time.Duration {
	d.mu.Lock()
	rtt := d.rtt
	d.mu.Unlock()
	lo := max(d.cfg.verifyMin, 2*rtt)
	return d.rnd.between(lo, max(d.cfg.verifyMax, lo))
}

// settle pushes settleAt to when the writes of a group forming since
// began should have landed: its last claimers' after the join wait and a
// write's round trips, and with busy (our claim found company or lost a
// race) its losers' second writes too, one read-back delay later. The
// caller holds d.mu.
//
// A peer's first full scan waits for it, so that it reads each slot once
// after the writes instead of once before and again, on a budget spent,
// after: every pair of peers is then found by at least the one that
// wrote last, whose scan follows the other's write. A claim alone in its
// slot settles soon, so two peers meet within a second; a busy one waits
// for the second writes.
func (d *Discoverer) settle(began time.Time, busy bool) {
	span := d.cfg.joinWait + max(d.cfg.verifyMin, 3*d.rtt)
	if busy {
		span += d.cfg.verifyMax
	}
	if at := began.Add(span); at.After(d.settleAt) {
		d.settleAt = at
	}
}

// spreadPool returns the slots of the join levels a claimer joining a
// group that is still forming picks from at random: those read within
// fresh with room for self, and those not read within fresh (a read just
// before the write tells). Peers that start together would otherwise all
// race for the first slot with room, and a slot takes one writer at a
// time: each lost race costs a PUT, and the PUT budget allows two before
// it makes a peer wait seconds. It returns nil once the group is settled
// (a live entry in the join levels has stood there for a fast phase),
// when a newcomer fills the lowest level with room as before, so that
// the steady scans of a settled group, which read only down to the
// deepest level they know someone in, find it.
func (a *announcement) spreadPool(self sealedEntry, fresh time.Duration, levels int) []int {
	d := a.d
	if levels == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	_, hi := levelRange(levels - 1)
	var pool []int
	for i := 0; i < hi; i++ {
		sv := d.view.slots[i]
		if d.view.lockHeld(i, now) {
			continue // scans no longer read it: its lock outlasts any read
		}
		if sv == nil || sv.read.IsZero() || now.Sub(sv.read) > fresh {
			pool = append(pool, i)
			continue
		}
		for _, e := range sv.entries {
			if e.kind == kindLive && e.rec.ID != self.rec.ID && now.Sub(e.since) >= d.cfg.fastPhase {
				return nil // settled
			}
		}
		if !sv.locked && d.room.free(sv, self, 0) {
			pool = append(pool, i)
		}
	}
	return pool
}

// stay keeps an announcement in the slot it holds after a move up was
// turned away (the shallower slot filled, or races took it): the held
// slot still has our entry, with the time it came there, so the next
// write goes back to it, and no move is tried for a republish period. A
// failed move that made the announcement claim anew would cost a whole
// claim at the fast pace, which in a group of hundreds showed in the
// steady GET rate.
func (a *announcement) stay(held int, since time.Time) {
	d := a.d
	d.mu.Lock()
	defer d.mu.Unlock()
	a.slot, a.since = held, since
	a.stayUntil = d.now().Add(d.cfg.republish)
	d.cfg.logger.Debug("move up turned away; staying", "slot", held)
}
