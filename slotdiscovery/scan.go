package slotdiscovery

import (
	"context"
	"slices"
	"time"
)

// scanner holds the rules of scanning: which slots of a level to read,
// which of those are worth a GET, when to go a level deeper or probe one
// further, and the pace. It is plain data: the Discoverer's lock guards
// it, and its methods take the time, the view, the room checks and what
// they need of our announcements as arguments, so a test can drive one
// alone. The Discoverer's scan and scanLoop do the reading.
type scanner struct {
	every      time.Duration // steady scan period (before jitter)
	fastEvery  time.Duration // scan period during the fast phase
	fastPhase  time.Duration // how long after joining scans run fast
	republish  time.Duration // how often each announcement rewrites its entry
	getRate    float64       // the steady GET budget, per second
	joinLevels int           // the levels a forming group spreads over

	scans     int           // scans begun
	took      time.Duration // how long the last scan took
	fastUntil time.Time     // the end of the fast phase
}

// claimingFast bounds, in fast phases, how long a peer still claiming
// scans fast.
const claimingFast = 5

// meetingSlots is how many of a sampled level's first unlocked slots every
// scan of the level reads: the first is where claims go; the second is
// read too, so that when the first turns out locked the meeting point
// moves on without a scan's delay.
const meetingSlots = 2

// newScanner returns a scanner in its fast phase until fastUntil.
func newScanner(cfg *config, fastUntil time.Time) scanner {
	return scanner{
		every:      cfg.scan,
		fastEvery:  cfg.fastScan,
		fastPhase:  cfg.fastPhase,
		republish:  cfg.republish,
		getRate:    cfg.getRate,
		joinLevels: cfg.joinLevels,
		fastUntil:  fastUntil,
	}
}

// begin counts a scan and reports whether it probes one level further
// than it needs to: every third scan.
func (s *scanner) begin() (probe bool) {
	s.scans++
	return s.scans%3 == 0
}

// fast reports whether scans run at the fast pace at now: for the fast
// phase after an announcement starts, and for as long as an announcement
// holds no slot (claiming holds when each announcement still claiming
// began; a zero time is one that holds a slot). A peer that is still
// claiming is still joining; on the steady budget its claim's reads would
// queue behind a scan's and leave it in no slot for minutes in a large
// group.
func (s *scanner) fast(now time.Time, claiming []time.Time) bool {
	if now.Before(s.fastUntil) {
		return true
	}
	for _, c := range claiming {
		// Bounded, so a peer that cannot claim at all (every relay
		// failing) does not read at the fast pace for ever.
		if !c.IsZero() && now.Sub(c) < claimingFast*s.fastPhase {
			return true
		}
	}
	return false
}

// pick returns the slots of level l to read: all of a small level, a
// random sample of a large one, plus those where we know a peer lives:
// the meeting points at now, the followed slots, and own, the slots our
// announcements hold.
func (s *scanner) pick(l int, rnd *lockedRand, v *view, own []int, now time.Time) []int {
	lo, hi := levelRange(l)
	if hi-lo <= wholeLevel {
		out := make([]int, hi-lo)
		for j := range out {
			out[j] = lo + j
		}
		return out
	}
	set := make(map[int]bool)
	for _, j := range rnd.perm(hi - lo)[:sampleSize] {
		set[lo+j] = true
	}
	for _, i := range s.meeting(v, l, meetingSlots, now) {
		set[i] = true
	}
	for i := range v.followed {
		if i >= lo && i < hi {
			set[i] = true
		}
	}
	for _, i := range own {
		if i >= lo && i < hi {
			set[i] = true
		}
	}
	out := make([]int, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// meeting returns the first slots of sampled level l whose lock, if any,
// is not known to hold at now, at most n of them: where the level's first
// claimers go (see claim), so that two peers alone in a level that nobody
// filled, above all one under levels locked ahead of time, find each
// other in its first slot instead of in two random ones of thousands.
func (s *scanner) meeting(v *view, l, n int, now time.Time) []int {
	lo, hi := levelRange(l)
	var out []int
	for i := lo; i < hi && len(out) < n; i++ {
		if !v.lockHeld(i, now) {
			out = append(out, i)
		}
	}
	return out
}

// deepest is the deepest level where we know a live peer, or hold a slot
// (own: the slots our announcements hold).
func (s *scanner) deepest(v *view, own []int) int {
	deep := 0
	for _, pv := range v.peers {
		if pv.live {
			deep = max(deep, levelOf(pv.slot))
		}
	}
	for _, i := range own {
		deep = max(deep, levelOf(i))
	}
	return deep
}

// deeper reports whether a scan that read idx of level l goes on to the
// next level: every slot read may have turned a claimer away (claimers
// went on), or we know someone deeper.
func (s *scanner) deeper(l int, idx []int, v *view, r *room, own []int) bool {
	allFull := len(idx) > 0
	for _, i := range idx {
		allFull = allFull && r.full(v.slot(i))
	}
	return allFull || l < s.deepest(v, own)
}

// joinScan reports whether a fast scan goes on below level l because
// that level is one a forming group spreads over (see WithJoinSpread): a
// group that formed together is anywhere in those levels, not packed
// from the top, until its members move up at their republish. A scan of
// a peer still claiming has stopped at level 0 already (see joining).
func (s *scanner) joinScan(l int, fast bool) bool {
	return fast && l+1 < s.joinLevels
}

// probeSlots returns the slots of level l a probe reads: the first slot
// with room is where a claimer that passed over the last places of the
// level above goes (see claim); a random one finds peers that went deeper
// for other reasons.
func (s *scanner) probeSlots(l int, rnd *lockedRand, v *view, now time.Time) []int {
	lo, hi := levelRange(l)
	next := s.meeting(v, l, 1, now)
	if r := lo + rnd.intN(hi-lo); !slices.Contains(next, r) {
		next = append(next, r)
	}
	return next
}

// readBefore returns the slots of idx last read before t (or never).
func readBefore(idx []int, v *view, t time.Time) []int {
	var out []int
	for _, i := range idx {
		if v.slot(i).read.Before(t) {
			out = append(out, i)
		}
	}
	return out
}

// worthReading drops the slots whose lock still holds at now, and, fast,
// the full slots read within the last steady period: a full slot can take
// no newcomer, so reading it again finds no one new, and the GETs go to
// the slots that can. A passphrase holder who locks slots ahead of time
// costs each peer one read per slot locked, not one per scan.
func (s *scanner) worthReading(idx []int, fast bool, now time.Time, v *view, r *room) []int {
	out := idx[:0:0]
	for _, i := range idx {
		sv := v.slot(i)
		switch {
		case v.lockHeld(i, now):
			continue
		case fast && !sv.read.IsZero() && now.Sub(sv.read) < s.every && r.full(v.placed(sv, now)):
			continue
		}
		out = append(out, i)
	}
	return out
}

// scanRate is the steady GET rate left to scans once each of anns
// announcements' read before its write and read-back after it (two per
// republish) are paid for, so the total stays within the budget.
func (s *scanner) scanRate(anns int) float64 {
	// A tenth of the budget is kept back for the reads that races and
	// moves add, which are not known in advance.
	own := 2 * float64(anns) / s.republish.Seconds()
	return max(0.9*s.getRate-own, s.getRate/4)
}

// period returns the time from one scan's start to the next, jittered.
func (s *scanner) period(fast bool, rnd *lockedRand) time.Duration {
	wait := rnd.jitter(s.every, 0.25)
	if fast {
		wait = rnd.jitter(s.fastEvery, 0.2)
	}
	return wait
}

// scan reads the slot space level by level, going deeper while every slot
// read in a level may have turned a claimer away (claimers went on) or we
// know someone deeper, and once in a while one level further, to find
// peers who went deeper while it was full.
func (d *Discoverer) scan(ctx context.Context) {
	d.mu.Lock()
	if d.joining() && d.anns.held() {
		// Our slot is confirmed and the group's writes are still landing:
		// the scan at settleAt reads them all at once.
		d.mu.Unlock()
		return
	}
	// A scan held back while we join counts for nothing: the third full
	// scan probes, not the one at settleAt.
	joining := d.joining()
	probe := !joining && d.scanner.begin()
	began := d.now()
	fast := d.scanner.fast(began, d.anns.claiming())
	// A discoverer's first scan, before any announcement, reads level 0
	// and goes deeper only as a steady one would: a peer that subscribes
	// and announces together (FindPeers, then Advertise) would otherwise
	// spend its burst on slots read a moment before its claim, and its
	// first full scan after the claim would wait for tokens.
	watcherFirst := d.scanner.scans == 1 && len(d.anns) == 0
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.scanner.took = d.now().Sub(began)
		d.view.sweep(d.now(), d.scanner.took)
	}()
	done := map[int]bool{}
	if fast {
		// Our own slots first: peers that start together land in ours as
		// often as in any other, and a fast pass that the budget stretches
		// over seconds should not reach it last.
		d.mu.Lock()
		own := d.anns.slots()
		// Not those our read-back has just read: a second GET would
		// find the same.
		read := readBefore(own, d.view, began.Add(-d.scanner.fastEvery/2))
		d.mu.Unlock()
		d.readSlots(ctx, read)
		for _, i := range own {
			done[i] = true
		}
	}
	if fast && !watcherFirst && !joining {
		// A fast scan reads the join levels whatever it finds in them
		// (joinScan): reading them in one batch, not one round trip per
		// level, finds a forming group two round trips sooner.
		d.batch(ctx, done)
	}
	for l := 0; l <= maxLevel && ctx.Err() == nil; l++ {
		d.mu.Lock()
		// Until one of our announcements holds a slot, a forming group's
		// slots below the first are still being written: reading them
		// would spend the burst that the scan after our claim needs, and
		// a claim in a settled group reads what it needs itself. Asked at
		// every level: an announcement may start during a scan.
		if l > 0 && d.joining() {
			d.mu.Unlock()
			break
		}
		idx := d.scanner.pick(l, d.rnd, d.view, d.anns.slots(), d.now())
		read := d.scanner.worthReading(idx, fast, d.now(), d.view, &d.room)
		if joining {
			// Level 0 read within a fast period (a claim's first look, a
			// scan before it) has nothing new for a peer still joining.
			read = readBefore(read, d.view, d.now().Add(-d.scanner.fastEvery))
		}
		d.mu.Unlock()
		read = slices.DeleteFunc(read, func(i int) bool { return done[i] })
		d.readSlots(ctx, read)
		d.mu.Lock()
		deeper := d.scanner.deeper(l, idx, d.view, &d.room, d.anns.slots()) ||
			d.scanner.joinScan(l, fast && !watcherFirst)
		d.mu.Unlock()
		if !deeper {
			if !probe || l == maxLevel {
				break
			}
			d.mu.Lock()
			next := d.scanner.probeSlots(l+1, d.rnd, d.view, d.now())
			d.mu.Unlock()
			d.readSlots(ctx, next)
			break
		}
	}
}

// batch reads, in one go, the slots of the join levels a fast scan would
// read level by level, when the budget pays for them all at once, and
// marks them done. Read level by level, a forming group's levels 0-2
// cost three round trips; on a budget that makes reads wait they are
// paced by the tokens anyway, and level by level a claim that starts
// meanwhile stops the scan before it spends them (see scan).
func (d *Discoverer) batch(ctx context.Context, done map[int]bool) {
	d.mu.Lock()
	now := d.now()
	var idx []int
	// The join levels are all read whole (maxJoinLevels), so the picks
	// here are the ones the scan would make.
	for l := 0; l < d.scanner.joinLevels; l++ {
		for _, i := range d.scanner.worthReading(d.scanner.pick(l, d.rnd, d.view, d.anns.slots(), now), true, now, d.view, &d.room) {
			if !done[i] {
				idx = append(idx, i)
			}
		}
	}
	d.mu.Unlock()
	if len(idx) == 0 || !d.budget.affords(now, len(idx)) {
		return
	}
	d.readSlots(ctx, idx)
	for _, i := range idx {
		done[i] = true
	}
}

func (d *Discoverer) scanLoop() {
	defer d.wg.Done()
	ctx := d.ctx
	for ctx.Err() == nil {
		began := d.now()
		d.scan(ctx)
		d.mu.Lock()
		wait := d.scanWait(began, d.pace(d.now()))
		d.mu.Unlock()
		t := d.cfg.clock.NewTimer(max(wait-d.now().Sub(began), 0))
		select {
		case <-t.Chan():
		case <-d.kick:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// scanWait returns how long after began, when the last scan began, the
// next one begins: a period (jittered, fast or steady as pace said), or
// sooner, at settleAt, while we join a forming group. The period runs
// from the scan's start: a scan the budget stretched is not followed by
// a full period of idling. The caller holds d.mu.
func (d *Discoverer) scanWait(began time.Time, fast bool) time.Duration {
	wait := d.scanner.period(fast, d.rnd)
	if d.joining() && d.settleAt.After(began) {
		wait = min(wait, d.settleAt.Sub(began))
	}
	return wait
}

// pace sets the GET budget for the scans from now on and reports whether
// they run fast: the fast pace in the fast phase; the fast pace capped at
// claimGetRate for an announcement still claiming after it; the steady
// pace otherwise. The caller holds d.mu.
func (d *Discoverer) pace(now time.Time) (fast bool) {
	fast = d.scanner.fast(now, d.anns.claiming())
	if fast {
		d.budget.fast(now, !now.Before(d.scanner.fastUntil))
	} else {
		d.budget.steady(now, d.scanner.scanRate(len(d.anns)))
	}
	return fast
}

// scanSoon asks the scan loop for a scan now.
func (d *Discoverer) scanSoon() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// joining reports whether scans hold back below level 0 because our
// announcements are joining, with join spreading on: until a forming
// group's writes have settled (see settle) and the first write of every
// spread claim is read back (it tells whether to wait longer); and while
// one of ours claims, reading what it needs itself, unless it only waits
// for a token of its writes' budgets (see awaitBudget). The caller holds
// d.mu.
func (d *Discoverer) joining() bool {
	switch {
	case d.cfg.joinLevels == 0 || len(d.anns) == 0:
		return false
	case d.anns.unjudged() || d.now().Before(d.settleAt):
		return true
	}
	return !d.anns.held() && !d.anns.budgetWaiting()
}
