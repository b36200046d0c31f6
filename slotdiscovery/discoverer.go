package slotdiscovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// The slot space of the default profile has no end: slot i belongs to
// level floor(log2(i+1)), so level 0 is slot 0, level 1 slots 1-2, level 2
// slots 3-6, and so on, each level twice the last. Peers fill the lowest
// level with room, so a small group lives in slot 0 and is read in one
// GET, while a thousand peers spread over eight levels and no live peer is
// ever pushed out to make room.
const (
	// maxLevel bounds how deep a claim goes: 2^17-1 slots, far more than
	// any group, so reaching it means every read failed or was locked.
	maxLevel = 16
	// wholeLevel is the largest level read in full; deeper levels are
	// sampled, sampleSize slots per scan. Levels 0-4, 31 slots: with
	// signed entries (about 240 wire bytes each for a key ID and two
	// addresses) a slot holds three, so these levels hold about 90 peers,
	// the size of group in which every peer knows every other.
	wholeLevel = 16
	sampleSize = 4
	// followSlots bounds the slots of sampled levels whose members a peer
	// reports and follows. Together with the 31 slots of the levels read
	// whole and the samples, a steady scan stays near 45 reads, which the
	// GET budget covers within the sweep horizon (about 250 s at the
	// steady rate, under twice the stale bound): a peer can only report
	// as live what it can afford to re-read. In a larger group each peer
	// knows everyone in the shallow levels (all of them know those) and a
	// stable share of the rest, which keeps the "knows" graph connected.
	followSlots = 8
	// typicalEntry is the wire size assumed for a stranger's entry when
	// judging whether a slot has room for one more: a key ID with its
	// 65-byte proof and two addresses.
	typicalEntry = 213
	// steadyBurst is the GET burst after the fast phase.
	steadyBurst = 2
	// limitedBurst caps the fast GET burst once a relay has answered 429:
	// with the default bursts of the reads around writes (4) and of PUTs
	// (2) it stays within one bucket of 10 for every request, pkarr's
	// relay's limit.
	limitedBurst = 4
)

func levelRange(l int) (lo, hi int) { return 1<<l - 1, 1<<(l+1) - 1 }

func levelOf(slot int) int { return bits.Len(uint(slot+1)) - 1 }

// Errors of the default profile.
var (
	// ErrNoSlot: no slot with room could be read, because every read
	// failed or every slot tried was locked.
	ErrNoSlot = errors.New("slotdiscovery: no slot with room")
	errFull   = errors.New("slotdiscovery: slot full")
	errLocked = errors.New("slotdiscovery: slot locked by a future timestamp")
)

// Discoverer is the default profile of the slot rendezvous: peers sharing
// a passphrase announce sealed entries in slots only they can find and
// read, and scan those slots for each other. See the package
// documentation for the design.
type Discoverer struct {
	client  *pkarrclient.Client
	group   *Group
	cfg     config
	rnd     *lockedRand
	tracker *discovery.Tracker
	stamper *pkarrclient.Stamper

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // a scan right after our own publish
	// leftAll is closed when every announcement Close ended has left;
	// stopOnce stops scanning and the subscriptions once, after that or
	// when a Close's ctx ends first.
	leftAll  chan struct{}
	stopOnce sync.Once

	mu        sync.Mutex
	closed    bool
	anns      map[string]*announcement
	left      map[string]time.Time // our own IDs' tombstone times
	slots     map[int]*slotView
	peers     map[string]*peerView
	fastUntil time.Time
	pausedTil time.Time     // set when every relay answered 429, to the first Retry-After
	gets      *rate.Limiter // scans and claims
	ownGets   *rate.Limiter // the read before each write, kept apart so scans cannot starve it
	puts      *rate.Limiter
	scans     int
	scanTook  time.Duration // how long the last scan took
	follow    map[int]bool  // followed slots of sampled levels (see followSlots)
	largest   int           // the largest entry seen, in wire bytes: what a claimer may need
	burstCap  int           // the GET burst allowed, lowered by a 429
	stats     Stats

	provenCache *lru.Cache[provenKey, struct{}] // entries whose proofs verified (see proven)
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

// Stats counts a discoverer's requests, for budgets and the simulation.
type Stats struct {
	Gets, Puts       int // requests made
	RateLimited      int // answered 429
	Conflicts        int // answered 409
	Claims           int // slots claimed (a move to another slot counts again)
	Moves            int // claims that moved a held entry to a shallower slot
	Collisions       int // read-backs that did not find our entry (a race, retried)
	LostClaims       int // slots we held and had to give up
	SlotsLocked      int // reads that found a slot stamped beyond the future bound
	UnopenedEntries  int // TXT records that did not open with the group key
	IgnoredFutureEnt int // entries stamped beyond the future bound
	UnprovenEntries  int // entries about a key without a valid proof by it (see WithIDSchemes)
}

// New returns a default-profile Discoverer over client's backends (relays,
// the DHT, or both) for the group's slots. It starts scanning at once, so
// a subscriber learns the group even before announcing.
func New(client *pkarrclient.Client, group *Group, opts ...Option) (*Discoverer, error) {
	if client == nil || group == nil {
		return nil, errors.New("slotdiscovery: nil client or group")
	}
	cfg := defaultConfig()
	cfg.name = "slots"
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	now := cfg.clock.Now()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Discoverer{
		client:    client,
		group:     group,
		cfg:       cfg,
		rnd:       newLockedRand(cfg.seed),
		tracker:   discovery.NewTracker(cfg.clock.Now),
		stamper:   pkarrclient.NewStamper(cfg.clock.Now),
		ctx:       ctx,
		cancel:    cancel,
		kick:      make(chan struct{}, 1),
		anns:      make(map[string]*announcement),
		left:      make(map[string]time.Time),
		slots:     make(map[int]*slotView),
		peers:     make(map[string]*peerView),
		follow:    make(map[int]bool),
		leftAll:   make(chan struct{}),
		burstCap:  cfg.getBurst,
		fastUntil: now.Add(cfg.fastPhase),
		gets:      rate.NewLimiter(rate.Limit(cfg.fastGetRate), cfg.getBurst),
		// Two reads per write: the one before it and the read-back.
		ownGets: rate.NewLimiter(rate.Limit(2*cfg.putRate), 2*cfg.putBurst),
		puts:    rate.NewLimiter(rate.Limit(cfg.putRate), cfg.putBurst),

		provenCache: newProvenCache(),
	}
	d.wg.Add(1)
	go d.scanLoop()
	return d, nil
}

// Name implements discovery.Discoverer.
func (d *Discoverer) Name() string { return d.cfg.name }

// Subscribe implements discovery.Discoverer.
func (d *Discoverer) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	return d.tracker.Subscribe(ctx)
}

// Peers returns the peers known now.
func (d *Discoverer) Peers() []discovery.Peer { return d.tracker.Peers() }

// Stats returns the request counters so far.
func (d *Discoverer) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Slot returns the slot an announced ID holds now, as its last read-back
// confirmed, or -1 while it is still claiming (or not announced here).
func (d *Discoverer) Slot(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.anns[id]; ok {
		return a.held
	}
	return -1
}

// Close implements [discovery.Discoverer.Close]: every announcement
// leaves (its tombstone written within the leave bound, see
// [WithLeaveTimeout]), scanning stops and every subscription closes. It
// waits for all of that, or until ctx ends: then scanning and the
// subscriptions stop at once and the tombstones go on in the background,
// within their bound. It is idempotent.
func (d *Discoverer) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		anns := make([]*announcement, 0, len(d.anns))
		for _, a := range d.anns {
			anns = append(anns, a)
		}
		go func() {
			var wg sync.WaitGroup
			for _, a := range anns {
				wg.Go(func() { a.end() })
			}
			wg.Wait()
			close(d.leftAll)
		}()
	}
	d.mu.Unlock()
	select {
	case <-d.leftAll:
	case <-ctx.Done():
	}
	// Scanning goes on while the tombstones are written, so that a peer
	// that comes back meanwhile is still seen; it stops when they are, or
	// when ctx says not to wait. The tombstones need none of it.
	d.stopOnce.Do(func() {
		d.cancel()
		d.wg.Wait()
		d.tracker.Close()
	})
	select {
	case <-d.leftAll:
		return nil
	default:
		return fmt.Errorf("slotdiscovery: close: tombstones still being written (it goes on within the leave bound): %w", ctx.Err())
	}
}

func (d *Discoverer) now() time.Time { return d.cfg.clock.Now() }

// stamp is now at the microsecond precision entries carry, so a time we
// wrote compares equal to the same time read back.
func (d *Discoverer) stamp() time.Time { return time.UnixMicro(d.now().UnixMicro()) }

// sleep waits d or until ctx ends.
func (d *Discoverer) sleep(ctx context.Context, dur time.Duration) error {
	if dur <= 0 {
		return ctx.Err()
	}
	t := d.cfg.clock.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// take waits for a token from lim, and for any 429 pause to pass. The
// budget is the peer's promise to the relays: it is never exceeded, so a
// well-behaved peer earns no 429 from a relay with the deployed limits.
func (d *Discoverer) take(ctx context.Context, lim *rate.Limiter) error {
	for {
		d.mu.Lock()
		now := d.now()
		pause := d.pausedTil.Sub(now)
		d.mu.Unlock()
		if pause <= 0 {
			break
		}
		if err := d.sleep(ctx, pause); err != nil {
			return err
		}
	}
	now := d.now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return errors.New("slotdiscovery: budget burst below one")
	}
	if err := d.sleep(ctx, r.DelayFrom(now)); err != nil {
		r.CancelAt(d.now())
		return err
	}
	return nil
}

// takeWaited is take, and reports whether the token had to be waited for.
func (d *Discoverer) takeWaited(ctx context.Context, lim *rate.Limiter) (bool, error) {
	before := d.now()
	err := d.take(ctx, lim)
	return d.now().After(before), err
}

// backoff reacts to a request error. A 429 caps the GET burst from then
// on: n0's relay limits only PUTs, pkarr's limits every request in one
// bucket of 10; the full fast-phase burst finds a group sooner on the
// first, and a relay that answers 429 has said it is the second. Each
// relay keeps away from itself for its own Retry-After (pkarrclient's
// Relay refuses calls until then without sending them), so the others
// go on; only when every relay said 429 does every request pause, until
// the first of them takes requests again.
func (d *Discoverer) backoff(err error) {
	var rl *pkarrclient.RateLimitError
	if !errors.As(err, &rl) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.RateLimited++
	if d.burstCap > limitedBurst {
		d.burstCap = limitedBurst
		d.gets.SetBurstAt(d.now(), min(d.gets.Burst(), limitedBurst))
	}
	wait, all := allRateLimited(err)
	if !all {
		return
	}
	if until := d.now().Add(max(wait, time.Second)); until.After(d.pausedTil) {
		d.pausedTil = until
	}
}

// allRateLimited reports whether every backend of a failed call answered
// 429, and the shortest wait among those that did.
func allRateLimited(err error) (time.Duration, bool) {
	var outcomes []pkarrclient.Outcome
	var re *pkarrclient.ResolveError
	var pe *pkarrclient.PublishError
	switch {
	case errors.As(err, &re):
		outcomes = re.Outcomes
	case errors.As(err, &pe):
		outcomes = pe.Outcomes
	default: // not a fan-out error: the one backend there is
		var rl *pkarrclient.RateLimitError
		return rl.RetryAfter, errors.As(err, &rl)
	}
	wait, limited := time.Duration(-1), 0
	for _, o := range outcomes {
		var rl *pkarrclient.RateLimitError
		if !errors.As(o.Err, &rl) {
			continue
		}
		limited++
		if wait < 0 || rl.RetryAfter < wait {
			wait = rl.RetryAfter
		}
	}
	return max(wait, 0), limited > 0 && limited == len(outcomes)
}

// readSlotWith fetches slot i on the given GET budget and folds what it
// holds into our views. A slot with no packet is read successfully as
// empty.
//
// Every read takes the most recent packet the relays serve within the
// settle window, not the first: a write carries forward what its read
// found, so one fast relay serving an old packet would otherwise make
// every writer erase the others' entries on the honest relays.
func (d *Discoverer) readSlotWith(ctx context.Context, i int, budget *rate.Limiter) error {
	return d.readSlot(ctx, i, budget, pkarrclient.NetworkOnly())
}

// readBack is the read that confirms our own write: the network's answer
// alone. The client's cache learned our packet when we published it, and
// answering from it would confirm a write that no relay kept.
func (d *Discoverer) readBack(ctx context.Context, i int) error {
	return d.readSlot(ctx, i, d.ownGets, pkarrclient.Uncached())
}

func (d *Discoverer) readSlot(ctx context.Context, i int, budget *rate.Limiter, mode pkarrclient.ResolveOption) error {
	if err := d.take(ctx, budget); err != nil {
		return err
	}
	key := d.group.SlotKey(i).PublicKey()
	p, err := d.client.Resolve(ctx, key, mode, pkarrclient.SettleWait(d.cfg.readSettle))
	d.mu.Lock()
	d.stats.Gets++
	d.mu.Unlock()
	if err != nil && !errors.Is(err, pkarrclient.ErrNotFound) {
		d.backoff(err)
		d.cfg.logger.Debug("slot read failed", "slot", i, "err", err)
		return err
	}
	d.observe(i, p)
	return nil
}

// readSlots reads the given slots in parallel on the scan's budget and
// returns how many reads succeeded.
func (d *Discoverer) readSlots(ctx context.Context, idx []int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, i := range idx {
		wg.Go(func() {
			if d.readSlotWith(ctx, i, d.gets) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

func (d *Discoverer) slotLocked(i int) *slotView {
	sv := d.slots[i]
	if sv == nil {
		sv = &slotView{entries: make(map[string]sealedEntry), current: make(map[string]time.Time)}
		d.slots[i] = sv
	}
	return sv
}

// fresh reports whether an entry's signed time makes it count now: not
// older than the stale bound, not further ahead than the future bound.
func (d *Discoverer) fresh(t, now time.Time) bool {
	return now.Sub(t) <= d.cfg.staleAfter && t.Sub(now) <= d.cfg.futureBound
}

// observe folds a read of slot i (p nil: empty) into the views and
// reports what changed to subscribers.
func (d *Discoverer) observe(i int, p *pkarrclient.SignedPacket) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	sv := d.slotLocked(i)
	sv.read = now
	// What a slot holds is what its newest packet holds: a write carries
	// forward exactly what it read, so an entry a full slot cut, or one
	// whose peer moved on, is not brought back from memory to push a
	// confirmed peer out.
	clear(sv.current)
	clear(sv.entries)
	if p == nil {
		sv.locked = false
		d.judgeLocked(i, now)
		return
	}
	// A packet stamped beyond the bound can never be overwritten (relays
	// keep the newest), so the slot is abandoned and what it holds
	// ignored: its author could otherwise pin entries that never age. Its
	// time is compared as a timestamp (up to 2^64-1 µs, which no int64
	// conversion survives) and not kept as one to beat: should a later read
	// miss it, a write stamped past it would lock the slot for everyone.
	if p.Timestamp().After(now.Add(d.cfg.futureBound)) {
		if !sv.locked {
			d.stats.SlotsLocked++
		}
		sv.locked = true
		sv.lockedUntil = p.Timestamp().Time().Add(-d.cfg.futureBound)
		clear(sv.entries)
		return
	}
	sv.locked = false
	sv.ts = max(sv.ts, p.Timestamp())
	defer d.judgeLocked(i, now)
	entries, bad := d.group.openSlot(p)
	d.stats.UnopenedEntries += bad
	entries = d.provenLocked(entries, p.PublicKey())
	follow := d.followLocked(i, entries, now)
	for _, e := range entries {
		if e.time.Sub(now) > d.cfg.futureBound || e.since.After(e.time) {
			d.stats.IgnoredFutureEnt++
			continue
		}
		if old, ok := sv.current[e.rec.ID]; !ok || e.time.After(old) {
			sv.current[e.rec.ID] = e.time
		}
		if !d.fresh(e.time, now) {
			continue
		}
		d.largest = max(d.largest, e.wireSize())
		if old, ok := sv.entries[e.rec.ID]; !ok || e.time.After(old.time) {
			sv.entries[e.rec.ID] = e
		}
		if follow {
			d.notePeerLocked(i, e.entry)
		}
	}
	d.pruneLocked(sv, now)
}

// followLocked reports whether the members of slot i, just read with
// entries, are ours to report: every slot of a level read whole, our own
// slots, and up to followSlots slots of sampled levels, taken as samples
// find others there and dropped when a read finds none. Members of other
// slots still count for room and depth, but are not reported, since the
// budget would not let us re-read their slot before they aged out.
func (d *Discoverer) followLocked(i int, entries []sealedEntry, now time.Time) bool {
	if lo, hi := levelRange(levelOf(i)); hi-lo <= wholeLevel {
		return true
	}
	for _, a := range d.anns {
		if a.slot == i {
			return true
		}
	}
	others := false
	for _, e := range entries {
		_, mine := d.anns[e.rec.ID]
		others = others || !mine && e.kind == kindLive && d.fresh(e.time, now)
	}
	switch {
	case !others:
		delete(d.follow, i)
		return true // nothing to report but tombstones and stale entries
	case d.follow[i]:
		return true
	case len(d.follow) < followSlots:
		d.follow[i] = true
		return true
	}
	return false
}

// pruneLocked drops entries that have aged out, and entries superseded by
// something newer we saw elsewhere (the peer moved or left).
func (d *Discoverer) pruneLocked(sv *slotView, now time.Time) {
	for id, e := range sv.entries {
		pv := d.peers[id]
		if !d.fresh(e.time, now) || pv != nil && pv.time.After(e.time) {
			delete(sv.entries, id)
		}
	}
}

// notePeerLocked reports another peer's entry to subscribers if it is the
// newest we have seen for that ID.
func (d *Discoverer) notePeerLocked(slot int, e entry) {
	id := e.rec.ID
	if _, mine := d.anns[id]; mine {
		return
	}
	if t, ok := d.left[id]; ok && !e.time.After(t) {
		return // a copy of what we announced before leaving
	}
	pv := d.peers[id]
	if pv != nil && !e.time.After(pv.time) {
		return
	}
	if pv == nil {
		pv = &peerView{}
		d.peers[id] = pv
	}
	pv.time, pv.slot, pv.live = e.time, slot, e.kind == kindLive
	if pv.live {
		d.tracker.Upsert(discovery.Peer{Record: e.rec.Clone(), Sources: []string{d.cfg.name}, Seen: e.time})
	} else {
		d.tracker.Remove(id)
	}
}

// judgeLocked reports as Lost every peer last seen in slot i whose newest
// entry has aged out, now that a read of slot i showed nothing newer.
// Liveness is judged on evidence: a peer whose slot the budget has not let
// us read again is not declared gone for that (see sweep).
func (d *Discoverer) judgeLocked(i int, now time.Time) {
	for id, pv := range d.peers {
		if pv.slot == i && now.Sub(pv.time) > d.cfg.staleAfter {
			d.forgetLocked(id, pv)
		}
	}
}

func (d *Discoverer) forgetLocked(id string, pv *peerView) {
	if pv.live {
		d.tracker.Remove(id)
	}
	delete(d.peers, id)
}

// sweep forgets peers not seen for twice the stale bound, or two scans
// when a scan takes longer, even though their slot went unread: a peer
// whose slot we stopped following must not be held forever, and one whose
// slot a budget-paced scan has not reached yet must not be dropped.
func (d *Discoverer) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	horizon := max(2*d.cfg.staleAfter, 2*d.scanTook)
	for id, pv := range d.peers {
		if now.Sub(pv.time) > horizon {
			d.forgetLocked(id, pv)
		}
	}
	for id, t := range d.left {
		if now.Sub(t) > d.cfg.staleAfter {
			delete(d.left, id)
		}
	}
}

// mergeLocked returns what a write of self into sv should hold: every
// fresh live entry and tombstone we know there, ours replacing any older
// version of our own, oldest claim first, cut where the packet is full.
// It reports whether ours made the cut. Every peer orders the same way,
// so all writers agree on who a full slot keeps; the newest claimant is
// the one that moves on.
func (d *Discoverer) mergeLocked(sv *slotView, self sealedEntry) ([]sealedEntry, bool) {
	all := make([]sealedEntry, 0, len(sv.entries)+1)
	for id, e := range sv.entries {
		if id != self.rec.ID {
			all = append(all, e)
		}
	}
	all = append(all, self)
	slices.SortFunc(all, func(a, b sealedEntry) int {
		// Tombstones go last: they only matter until the leaver's peers
		// have seen them, and must never displace a live peer.
		if a.kind != b.kind {
			return cmp.Compare(a.kind, b.kind)
		}
		return cmp.Or(a.since.Compare(b.since), cmp.Compare(a.rec.ID, b.rec.ID))
	})
	size := packetOverhead
	kept := all[:0]
	in := false
	for _, e := range all {
		if size+e.wireSize() > pkarrclient.MaxDNSSize {
			continue
		}
		size += e.wireSize()
		kept = append(kept, e)
		in = in || e.rec.ID == self.rec.ID
	}
	return kept, in
}

// freeLocked reports whether slot i has room for self and extra bytes
// more beside every fresh entry we know there. A claim asks for free room,
// never for the place of a younger entry: the oldest-first order of
// mergeLocked only settles races, it is not a licence to push a live peer
// out.
func (d *Discoverer) freeLocked(i int, self sealedEntry, extra int) bool {
	size := packetOverhead + self.wireSize() + extra
	for id, e := range d.slotLocked(i).entries {
		if id != self.rec.ID {
			size += e.wireSize()
		}
	}
	return size <= pkarrclient.MaxDNSSize
}

// cutsLive reports whether a write of kept would leave out a live entry
// of another peer that sv holds. sv is read under the caller's lock or
// after it: only the write's own goroutine replaces sv.entries' contents
// for this decision, and a race only makes the answer more cautious.
func cutsLive(sv *slotView, kept []sealedEntry, self string) bool {
	in := make(map[string]bool, len(kept))
	for _, e := range kept {
		in[e.rec.ID] = true
	}
	for id, e := range sv.entries {
		if id != self && e.kind == kindLive && !in[id] {
			return true
		}
	}
	return false
}

// largestLocked is the entry size a slot must still have room for to take
// any member of the group: the largest seen, or a typical one before any.
func (d *Discoverer) largestLocked() int { return max(typicalEntry, d.largest) }

// fullLocked reports whether slot i may have turned a claimer away: it
// has no room for an entry as large as the largest we have seen in the
// group, or is locked. Judging by the largest size allowed instead would
// send every scan a level deeper than the group reaches, at a steady
// cost in GETs; a newcomer whose entry is larger than any before it is
// found by the probe one level further (see scan) instead.
func (d *Discoverer) fullLocked(i int) bool {
	sv := d.slotLocked(i)
	if sv.locked {
		return true
	}
	size := packetOverhead + d.largestLocked()
	for _, e := range sv.entries {
		size += e.wireSize()
	}
	return size > pkarrclient.MaxDNSSize
}

// pick returns the slots of level l to read: all of a small level, a
// random sample of a large one, plus those where we know a peer lives.
func (d *Discoverer) pick(l int) []int {
	lo, hi := levelRange(l)
	if hi-lo <= wholeLevel {
		out := make([]int, 0, hi-lo)
		for i := lo; i < hi; i++ {
			out = append(out, i)
		}
		return out
	}
	set := make(map[int]bool)
	for _, j := range d.rnd.perm(hi - lo)[:sampleSize] {
		set[lo+j] = true
	}
	d.mu.Lock()
	for _, i := range d.meetingLocked(l, meetingSlots) {
		set[i] = true
	}
	for i := range d.follow {
		if i >= lo && i < hi {
			set[i] = true
		}
	}
	for _, a := range d.anns {
		if a.slot >= lo && a.slot < hi {
			set[a.slot] = true
		}
	}
	d.mu.Unlock()
	out := make([]int, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// lockHeldLocked reports whether slot i was read locked and its lock still
// holds at now.
func (d *Discoverer) lockHeldLocked(i int, now time.Time) bool {
	sv := d.slots[i]
	return sv != nil && sv.locked && now.Before(sv.lockedUntil)
}

// meetingLocked returns the first slots of sampled level l whose lock, if
// any, is not known to hold, at most n of them: where the level's first
// claimers go (see claim), so that two peers alone in a level that
// nobody filled, above all one under levels locked ahead of time, find
// each other in its first slot instead of in two random ones of
// thousands.
func (d *Discoverer) meetingLocked(l, n int) []int {
	lo, hi := levelRange(l)
	now := d.now()
	var out []int
	for i := lo; i < hi && len(out) < n; i++ {
		if !d.lockHeldLocked(i, now) {
			out = append(out, i)
		}
	}
	return out
}

// deepest is the deepest level where we know a live peer, or hold a slot.
func (d *Discoverer) deepestLocked() int {
	deep := 0
	for _, pv := range d.peers {
		if pv.live {
			deep = max(deep, levelOf(pv.slot))
		}
	}
	for _, a := range d.anns {
		if a.slot >= 0 {
			deep = max(deep, levelOf(a.slot))
		}
	}
	return deep
}

// scan reads the slot space level by level, going deeper while every slot
// read in a level may have turned a claimer away (claimers went on) or we
// know someone deeper, and once in a while one level further, to find
// peers who went deeper while it was full.
func (d *Discoverer) scan(ctx context.Context) {
	d.mu.Lock()
	d.scans++
	probe := d.scans%3 == 0
	began := d.now()
	fast := d.fastLocked(began)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.scanTook = d.now().Sub(began)
		d.mu.Unlock()
		d.sweep()
	}()
	for l := 0; l <= maxLevel && ctx.Err() == nil; l++ {
		idx := d.pick(l)
		d.readSlots(ctx, d.worthReading(idx, fast))
		d.mu.Lock()
		allFull := len(idx) > 0
		for _, i := range idx {
			allFull = allFull && d.fullLocked(i)
		}
		deeper := allFull || l < d.deepestLocked()
		d.mu.Unlock()
		if !deeper {
			if !probe || l == maxLevel {
				break
			}
			// The first slot with room is where a claimer that passed
			// over this level's last places goes (see claim); a random
			// one finds peers that went deeper for other reasons.
			lo, hi := levelRange(l + 1)
			d.mu.Lock()
			next := d.meetingLocked(l+1, 1)
			d.mu.Unlock()
			if r := lo + d.rnd.intN(hi-lo); !slices.Contains(next, r) {
				next = append(next, r)
			}
			d.readSlots(ctx, next)
			break
		}
	}
}

// fastLocked reports whether scans run at the fast pace: for the fast
// phase after an announcement starts, and for as long as an announcement
// holds no slot. A peer that is still claiming is still joining; on the
// steady budget its claim's reads would queue behind a scan's and leave it
// in no slot for minutes in a large group.
func (d *Discoverer) fastLocked(now time.Time) bool {
	if now.Before(d.fastUntil) {
		return true
	}
	for _, a := range d.anns {
		// Bounded, so a peer that cannot claim at all (every relay
		// failing) does not read at the fast pace for ever.
		if !a.claiming.IsZero() && now.Sub(a.claiming) < claimingFast*d.cfg.fastPhase {
			return true
		}
	}
	return false
}

// claimingFast bounds, in fast phases, how long a peer still claiming
// scans fast.
const claimingFast = 5

// meetingSlots is how many of a sampled level's first unlocked slots every
// scan of the level reads: the first is where claims go; the second is
// read too, so that when the first turns out locked the meeting point
// moves on without a scan's delay.
const meetingSlots = 2

// worthReading drops the slots whose lock still holds, and, during the
// fast phase, the full slots read within the last steady period: a full
// slot can take no newcomer, so reading it again finds no one new, and
// the GETs go to the slots that can. A passphrase holder who locks slots
// ahead of time costs each peer one read per slot locked, not one per
// scan.
func (d *Discoverer) worthReading(idx []int, fast bool) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	out := idx[:0:0]
	for _, i := range idx {
		sv := d.slotLocked(i)
		switch {
		case d.lockHeldLocked(i, now):
			continue
		case fast && !sv.read.IsZero() && now.Sub(sv.read) < d.cfg.scan && d.fullLocked(i):
			continue
		}
		out = append(out, i)
	}
	return out
}

func (d *Discoverer) scanLoop() {
	defer d.wg.Done()
	ctx := d.ctx
	for ctx.Err() == nil {
		began := d.now()
		d.scan(ctx)
		d.mu.Lock()
		now := d.now()
		fast := d.fastLocked(now)
		if fast {
			d.gets.SetLimitAt(now, rate.Limit(d.cfg.fastGetRate))
			d.gets.SetBurstAt(now, min(d.cfg.getBurst, d.burstCap))
		} else {
			// In steady state a scan is paced by the rate anyway; a small
			// burst keeps any window of the run, not only the long run,
			// within the steady budget.
			d.gets.SetLimitAt(now, rate.Limit(d.scanRate()))
			d.gets.SetBurstAt(now, min(d.cfg.getBurst, steadyBurst))
		}
		d.mu.Unlock()
		// The period runs from the scan's start: a scan the budget
		// stretched is not followed by a full period of idling.
		wait := d.rnd.jitter(d.cfg.scan, 0.25)
		if fast {
			wait = d.rnd.jitter(d.cfg.fastScan, 0.2)
		}
		t := d.cfg.clock.NewTimer(max(wait-d.now().Sub(began), 0))
		select {
		case <-t.Chan():
		case <-d.kick:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// scanRate is the steady GET rate left to scans once each announcement's
// read before its write and read-back after it (two per republish) are
// paid for, so the total stays within the budget.
func (d *Discoverer) scanRate() float64 {
	// A tenth of the budget is kept back for the reads that races and
	// moves add, which are not known in advance.
	own := 2 * float64(len(d.anns)) / d.cfg.republish.Seconds()
	return max(0.9*d.cfg.getRate-own, d.cfg.getRate/4)
}

// scanSoon asks the scan loop for a scan now.
func (d *Discoverer) scanSoon() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

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
	delete(d.left, rec.ID)
	if pv := d.peers[rec.ID]; pv != nil {
		delete(d.peers, rec.ID)
		if pv.live {
			d.tracker.Remove(rec.ID)
		}
	}
	d.fastUntil = now.Add(d.cfg.fastPhase)
	d.gets.SetLimitAt(now, rate.Limit(d.cfg.fastGetRate))
	d.gets.SetBurstAt(now, min(d.cfg.getBurst, d.burstCap))
	d.cfg.logger.Debug("announce")
	d.wg.Add(1)
	go a.run()
	context.AfterFunc(actx, func() { go a.end() })
	return a, nil
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
	ended    bool
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
	d.left[rec.ID] = tombTime
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
		err := d.readSlotWith(ctx, slot, d.ownGets)
		if err == nil {
			err = d.take(ctx, d.puts)
		}
		if err == nil {
			err = a.write(ctx, slot, tomb)
		}
		if err == nil {
			err = d.sleep(ctx, d.rnd.between(d.cfg.verifyMin, d.cfg.verifyMax))
		}
		if err == nil {
			err = d.readBack(ctx, slot)
		}
		if err != nil {
			d.cfg.logger.Debug("tombstone not written", "slot", slot, "err", err)
			continue
		}
		d.mu.Lock()
		got, ok := d.slotLocked(slot).current[id]
		d.mu.Unlock()
		if ok && !got.Before(tomb.time) {
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
		} else if up := a.shallower(slot); up >= 0 {
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
			d.mu.Lock()
			if a.held == slot {
				d.stats.LostClaims++
			}
			a.slot, a.held = -1, -1
			a.refused++
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
		a.held, a.claiming, a.refused = slot, time.Time{}, 0
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
	d.largest = max(d.largest, self.wireSize())
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
	contended := a.refused > 0
	d.mu.Unlock()
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
			if d.readSlots(ctx, idx) == 0 && ctx.Err() != nil {
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
		sv := d.slots[i]
		if sv == nil || sv.read.IsZero() {
			continue
		}
		if age := now.Sub(sv.read); age > fresh && !d.lockHeldLocked(i, now) &&
			(!contended || age > d.cfg.staleAfter || !d.fullLocked(i)) {
			continue
		}
		known = append(known, i)
		if sv.locked || !d.freeLocked(i, self, 0) {
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
	if m := a.d.meetingLocked(l, 1); len(m) > 0 {
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
			sv := d.slots[i]
			if sv == nil || sv.locked || sv.read.IsZero() || now.Sub(sv.read) > fresh {
				continue
			}
			if d.freeLocked(i, self, d.largestLocked()) {
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
	fresh := false // whether the last read of slot is the one to merge
	for attempt := 0; attempt < 4 && ctx.Err() == nil; attempt++ {
		// Read just before writing, so the entries carried forward are the
		// newest versions: a write from a memory one scan old would roll
		// back every peer that refreshed since. After a failed read-back,
		// that read-back is the fresh read.
		if !fresh {
			if err := d.readSlotWith(ctx, slot, d.ownGets); err != nil {
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
		waited, err := d.takeWaited(ctx, d.puts)
		if err != nil {
			return false
		}
		if waited {
			// The budget made us wait, so our read is old: read again, or
			// the write would roll back whoever wrote meanwhile.
			if err := d.readSlotWith(ctx, slot, d.ownGets); err != nil {
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
		if d.sleep(ctx, d.rnd.between(d.cfg.verifyMin, d.cfg.verifyMax)) != nil {
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
		got, ok := d.slotLocked(slot).current[self.rec.ID]
		held := ok && !got.Before(self.time)
		if !held {
			d.stats.Collisions++
		}
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
	sv := d.slotLocked(slot)
	if sv.locked {
		d.mu.Unlock()
		return nil, self, errLocked
	}
	kept, in := d.mergeLocked(sv, self)
	// A writer never pushes out a live entry it just read: if ours does
	// not fit beside them all, ours is the one that moves on. Otherwise two
	// peers that raced for the last place could each confirm, and the one
	// retrying later would cut the one already confirmed.
	full := !in || cutsLive(sv, kept, self.rec.ID)
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
	sv := d.slotLocked(slot)
	d.mu.Unlock()
	_, err = d.client.Publish(ctx, p)
	d.mu.Lock()
	d.stats.Puts++
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
