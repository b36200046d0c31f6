package slotdiscovery

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
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

	// budget paces every request; it has its own leaf lock (see budget).
	budget *budget

	// mu guards what follows, the announcements' fields and the view,
	// room and scanner, which are plain data: the rules live in their
	// methods, and a Discoverer method takes mu around a call to them and
	// releases it around every request and every wait.
	mu      sync.Mutex
	closed  bool
	anns    announcements
	view    *view
	room    room
	scanner scanner
	stats   Stats
	rtt     time.Duration // the round trip of our last write, what a racing writer's takes too
	// settleAt is when the writes of the forming group we claimed in
	// should have landed (zero until a claim spreads, see settle): our
	// first full scan waits for it.
	settleAt time.Time

	provenCache *lru.Cache[provenKey, struct{}] // entries whose proofs verified (see proven)
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
		client:  client,
		group:   group,
		cfg:     cfg,
		rnd:     newLockedRand(cfg.seed),
		tracker: discovery.NewTracker(cfg.clock.Now),
		stamper: pkarrclient.NewStamper(cfg.clock.Now),
		ctx:     ctx,
		cancel:  cancel,
		kick:    make(chan struct{}, 1),
		leftAll: make(chan struct{}),
		anns:    make(announcements),
		budget:  newBudget(cfg.clock, cfg.reqRate, cfg.reqBurst, cfg.fastGetRate, cfg.getBurst, cfg.putRate, cfg.putBurst),
		scanner: newScanner(&cfg, now.Add(cfg.fastPhase)),

		provenCache: newProvenCache(),
	}
	d.view = newView(cfg.staleAfter, cfg.futureBound, cfg.name, d.tracker, &d.stats)
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

// sleep waits dur or until ctx ends.
func (d *Discoverer) sleep(ctx context.Context, dur time.Duration) error {
	return sleep(ctx, d.cfg.clock, dur)
}

// backoff reacts to a request error (see budget.backoff), and counts a 429.
func (d *Discoverer) backoff(err error) {
	if d.budget.backoff(d.now(), err) {
		d.mu.Lock()
		d.stats.RateLimited++
		d.mu.Unlock()
	}
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
	return d.readSlot(ctx, i, d.budget.ownGets, pkarrclient.Uncached())
}

func (d *Discoverer) readSlot(ctx context.Context, i int, budget *rate.Limiter, mode pkarrclient.ResolveOption) error {
	if err := d.budget.take(ctx, budget); err != nil {
		return err
	}
	return d.fetchSlot(ctx, i, mode)
}

// fetchSlot is readSlot once its token is taken.
func (d *Discoverer) fetchSlot(ctx context.Context, i int, mode pkarrclient.ResolveOption) error {
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

// readSlots reads the given slots on the scan's budget, in random order,
// and returns how many reads succeeded. The reads go out in parallel as
// their tokens come, taken one at a time and only once at hand (see
// budget.awaitToken): tokens reserved for all of them up front would
// queue the writes of our claims behind the whole batch, and at the paced
// rate a level of sixteen slots holds the budget for eight seconds. The
// order is random so that, paced, no slot's place in the list decides
// how late a write to it is seen.
func (d *Discoverer) readSlots(ctx context.Context, idx []int) int {
	shuffled := make([]int, len(idx))
	for j, k := range d.rnd.perm(len(idx)) {
		shuffled[j] = idx[k]
	}
	return d.readSlotsUntil(ctx, shuffled, nil)
}

// readSlotsUntil is readSlots in the order given, sending no more reads
// once stop (if not nil) reports true: the reads that came back before a
// token did can make the rest needless.
func (d *Discoverer) readSlotsUntil(ctx context.Context, idx []int, stop func() bool) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, i := range idx {
		if stop != nil {
			// Decided once the token is at hand: paced, the reads sent
			// before it have come back by then; in a burst, one more
			// read costs no wait.
			if _, err := d.budget.awaitToken(ctx); err != nil || stop() {
				break
			}
		}
		if d.budget.take(ctx, d.budget.gets) != nil {
			break
		}
		wg.Go(func() {
			if d.fetchSlot(ctx, i, pkarrclient.NetworkOnly()) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

// observe folds a read of slot i (p nil: empty) into the view, which
// reports what changed to subscribers.
func (d *Discoverer) observe(i int, p *pkarrclient.SignedPacket) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if p == nil {
		d.view.observeEmpty(i, now)
		return
	}
	d.room.see(d.view.observe(i, p.Timestamp(), func() []sealedEntry {
		entries, bad := d.group.openSlot(p)
		d.stats.UnopenedEntries += bad
		return d.provenLocked(entries, p.PublicKey())
	}, now, d.anns))
}
