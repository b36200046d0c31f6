package slotdiscovery

// The can-sync profile: a faithful Go reproduction of can-sync's pkarr
// rendezvous (examples/can-sync/src/rendezvous.rs in CanMan), so that Go
// programs can join a can-sync group and so that the project's simulation
// has the reference design to compare against. Its known failures (eight
// slots, claim races, no staleness, IDs in clear text; see the notes) are
// kept on purpose: fixing them here would make it useless as a baseline.

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/zeebo/blake3"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// CanSyncRecordName is the name, relative to the slot's key, of the TXT
// record in which a can-sync peer publishes its ID.
const CanSyncRecordName = "_can_sync"

// canSyncTTL is the TTL can-sync gives its TXT record, in seconds.
const canSyncTTL = 300

// can-sync republishes every 60 s and scans every 15 s.
const (
	canSyncRepublish = 60 * time.Second
	canSyncScan      = 15 * time.Second
)

// canSyncIDSize is the size of a can-sync ID: an iroh endpoint ID, which is
// an Ed25519 public key.
const canSyncIDSize = 32

// CanSync is the can-sync profile of the slot rendezvous: a
// [discovery.Discoverer] that speaks can-sync's rendezvous exactly, on the
// wire and in its schedule.
//
// Eight slot keys come from the passphrase (see [CanSyncSlotKey]). A peer
// claims a slot (the one already holding its ID, else the first empty one,
// else one chosen by a hash of its ID, overwriting whoever is there) and
// publishes there one TXT record [CanSyncRecordName] holding its ID in
// lowercase hex, again every republish interval (default 60 s). Every scan
// interval (default 15 s) it reads all eight slots one after another and
// reports IDs it has not reported yet. Reads and claims treat any failure
// as an empty slot, as can-sync does.
//
// Two things are added to can-sync's behaviour, both invisible to can-sync
// peers: at the end of every complete scan, a reported peer whose ID is in
// no slot any more is reported Lost (can-sync never forgets a peer; Lost
// makes its slot flapping visible), and an announcement that ends clears
// its slot with an empty packet if the slot still holds its ID, so other
// Go peers see it leave (can-sync peers read the slot as empty).
//
// Locked slots are the other addition. A slot whose packet is stamped
// beyond the future bound (WithFutureMargin, default 2 min) can never be
// written again: relays keep the newer packet, and an attacker who knows
// the passphrase can stamp one at 2^64-1 µs. can-sync cannot move once it
// has claimed, so a claim never takes a locked slot: not as the slot that
// holds its ID, not as an empty one, and when all eight are taken it
// overwrites the first slot after its hash fallback that is not locked.
// can-sync would write a locked slot and stay there unseen for good (n0's
// relay drops the losing write without an error). An ID in a locked slot
// is still reported, as can-sync does, but seen no later than it was read:
// a Peer.Seen in the future would outrank every honest record where
// sources are merged.
//
// One difference is deliberate: every read asks the network
// (pkarrclient.NetworkOnly), eight GETs a scan. can-sync's pkarr client
// (pkarr 3 to 6) answers a slot it has read before from its cache, and
// asks the network again, in the background, only once the cached packet
// is 300 s old; so can-sync peers send fewer requests and notice an
// overwritten slot up to five minutes late.
//
// The wire carries only the ID, so records must have no Addrs and no Meta,
// and the ID must be what can-sync publishes: the lowercase hex of a
// 32-byte Ed25519 public key (an iroh endpoint ID). Options that tune the
// default profile's schedule (fast scan, staleness, budgets, read-back
// delay, seed) do not apply and are ignored; WithFutureMargin does.
//
// A CanSync is safe for concurrent use. Close it to stop scanning.
type CanSync struct {
	client  *pkarrclient.Client
	cfg     config
	keys    [CanSyncSlots]*pkarrclient.SecretKey
	pubs    [CanSyncSlots]pkarrclient.PublicKey
	stamper *pkarrclient.Stamper
	tracker *discovery.Tracker
	log     *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the scan loop and every announcement

	// scanMu makes scans (the periodic one, an announcement's initial one)
	// take turns, so that each scan's "which IDs are in the slots" is its
	// own consistent view when it decides who is Lost. A one-place
	// channel rather than a mutex: a scan waits on the network while it
	// holds the turn, and a goroutine blocked on a mutex is not durably
	// blocked, which would stall a testing/synctest bubble.
	scanTurn chan struct{}
	// rescan restarts the scan schedule at the given time (an
	// announcement's claim just finished), as can-sync's scan interval is
	// created right after its claim.
	rescan chan time.Time

	mu        sync.Mutex
	closed    bool
	announced map[string]*canSyncAnnouncement // by ID, until its leave is done
	own       map[string]struct{}             // every ID ever announced here

	closeOnce sync.Once
	closeDone chan struct{} // closed when every leave is done and the keys destroyed
}

var _ discovery.Discoverer = (*CanSync)(nil)

// NewCanSync returns the can-sync profile for passphrase, talking to the
// relays (or DHT) behind client. It derives the eight slot keys at once
// and keeps them, not the passphrase. It starts scanning at once, so a
// user that only subscribes still learns the group.
//
// can-sync accepts any passphrase, and so does NewCanSync, except an empty
// one (ErrEmptyPassphrase). Its slot keys cost one BLAKE3 each to guess:
// only a long random passphrase protects a can-sync group.
//
// can-sync's wire is one bare ID per slot, with no room for a proof, so
// WithIDSchemes and WithSigner do not apply: anyone holding the
// passphrase can overwrite any member's slot with another ID, or clear
// it, and so hide that member. The default profile does not have this
// weakness for IDs that are keys.
func NewCanSync(client *pkarrclient.Client, passphrase []byte, opts ...Option) (*CanSync, error) {
	if client == nil {
		return nil, errors.New("slotdiscovery: nil pkarr client")
	}
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	cfg := defaultConfig()
	// can-sync's own schedule, where it differs from the default profile's.
	cfg.republish, cfg.scan = canSyncRepublish, canSyncScan
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	if cfg.name == "" {
		cfg.name = "can-sync"
	}
	c := &CanSync{
		scanTurn:  make(chan struct{}, 1),
		client:    client,
		cfg:       cfg,
		stamper:   pkarrclient.NewStamper(cfg.clock.Now),
		tracker:   discovery.NewTracker(cfg.clock.Now),
		log:       cfg.logger.With("discoverer", cfg.name),
		rescan:    make(chan time.Time, 1),
		announced: make(map[string]*canSyncAnnouncement),
		own:       make(map[string]struct{}),
		closeDone: make(chan struct{}),
	}
	for i := range CanSyncSlots {
		c.keys[i] = CanSyncSlotKey(passphrase, i)
		c.pubs[i] = c.keys[i].PublicKey()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.scanLoop()
	return c, nil
}

// Name returns the name found peers carry in Peer.Sources: WithName's, or
// "can-sync".
func (c *CanSync) Name() string { return c.cfg.name }

// SlotKeys returns the public keys of the eight slots, in slot order: where
// a can-sync group lives on relays and the DHT.
func (c *CanSync) SlotKeys() []pkarrclient.PublicKey {
	return append([]pkarrclient.PublicKey(nil), c.pubs[:]...)
}

// Subscribe implements [discovery.Discoverer.Subscribe].
func (c *CanSync) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, discovery.ErrClosed
	}
	return c.tracker.Subscribe(ctx)
}

// Announce implements [discovery.Discoverer.Announce]. rec.ID must be the
// lowercase hex of a 32-byte Ed25519 public key and rec must carry no Addrs
// and no Meta (ErrInvalidRecord), because that is all can-sync's wire
// carries. The slot is claimed in the background: Announce returns before
// anything is read or written.
//
// An ID whose earlier announcement is still clearing its slot (its Leave's
// context ended first) waits for that to finish, within ctx, so the old
// clearing cannot erase the new announcement.
func (c *CanSync) Announce(ctx context.Context, rec discovery.Record) (discovery.Announcement, error) {
	idBytes, err := checkCanSyncRecord(rec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, discovery.ErrClosed
		}
		old := c.announced[rec.ID]
		if old == nil {
			break // c.mu still held
		}
		c.mu.Unlock()
		if !old.isEnded() {
			return nil, fmt.Errorf("%w: %q", discovery.ErrAlreadyAnnounced, rec.ID)
		}
		select {
		case <-old.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// c.mu is held: register the announcement before Close can start
	// waiting for the WaitGroup.
	runCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	a := &canSyncAnnouncement{
		c:       c,
		id:      rec.ID,
		idBytes: idBytes,
		ctx:     runCtx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	c.announced[rec.ID] = a
	c.own[rec.ID] = struct{}{}
	// We may have found this ID in a slot before announcing it; from now on
	// it is ourselves, which a Discoverer never reports.
	c.tracker.Remove(rec.ID)
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer stop()
		a.run()
	}()
	return a, nil
}

// Close implements [discovery.Discoverer.Close]: it ends every
// announcement (each clears its slot as a Leave would, within the leave
// bound), stops scanning and closes every subscription. It waits for all
// of that, or until ctx ends: then the clearing goes on in the background
// and the slot keys are destroyed once it is done. It is idempotent.
func (c *CanSync) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		go func() {
			c.wg.Wait()
			// The leaves sign with the keys: destroyed only after them.
			for _, k := range c.keys {
				k.Destroy()
			}
			close(c.closeDone)
		}()
	})
	select {
	case <-c.closeDone:
	case <-ctx.Done():
	}
	c.tracker.Close()
	select {
	case <-c.closeDone:
		return nil
	default:
		return fmt.Errorf("slotdiscovery: close: slots still being cleared (it goes on within the leave bound): %w", ctx.Err())
	}
}

// checkCanSyncRecord returns the ID's bytes if rec can be announced on
// can-sync's wire.
func checkCanSyncRecord(rec discovery.Record) ([]byte, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if len(rec.Addrs) > 0 || len(rec.Meta) > 0 {
		return nil, fmt.Errorf("%w: can-sync's wire carries only the ID, so Addrs and Meta must be empty", discovery.ErrInvalidRecord)
	}
	if len(rec.ID) != 2*canSyncIDSize || strings.ToLower(rec.ID) != rec.ID {
		return nil, fmt.Errorf("%w: a can-sync ID is 64 lowercase hex digits (a 32-byte endpoint ID), got %d characters", discovery.ErrInvalidRecord, len(rec.ID))
	}
	b, err := hex.DecodeString(rec.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: a can-sync ID is 64 lowercase hex digits: %v", discovery.ErrInvalidRecord, err)
	}
	// can-sync parses what it reads as an iroh EndpointId, an Ed25519
	// public key: an ID that is not a curve point reads as an empty slot,
	// which every peer would overwrite.
	if _, err := pkarrclient.PublicKeyFromBytes(b); err != nil {
		return nil, fmt.Errorf("%w: a can-sync ID must be an Ed25519 public key: %v", discovery.ErrInvalidRecord, err)
	}
	return b, nil
}

// ReadCanSyncSlot reads one can-sync slot from the network (never from the
// client's cache) and returns the ID it holds, in lowercase hex, and the
// packet's timestamp. It takes the most recent packet the backends serve
// within a short window after the first answer (300 ms, see
// pkarrclient.SettleWait), not the first: one fast relay serving an old packet
// would otherwise hide every later claim. opts are passed on to the
// resolve after those defaults, so SettleWait(0) restores first-answer reads.
//
// The slot is read as can-sync reads it: the first TXT record named
// [CanSyncRecordName] whose value, trimmed of white space, is hex (either
// case) of 32 bytes decides; those bytes must be an Ed25519 public key,
// else the slot is empty. A slot with no packet, or a packet without such
// a record (other names, garbage values, an empty packet left by a leave),
// is empty: the error then wraps pkarrclient.ErrNotFound, and ts is the
// packet's timestamp if there was a packet. Other errors (relays
// unreachable, invalid answers) are returned as the client reports them;
// can-sync itself does not tell them from an empty slot.
//
// ts may lie anywhere up to 2^64-1 µs: judge whether it locks the slot in
// the timestamp domain, ts.After(now.Add(bound)).
func ReadCanSyncSlot(ctx context.Context, client *pkarrclient.Client, key pkarrclient.PublicKey, opts ...pkarrclient.ResolveOption) (id string, ts pkarrclient.Timestamp, err error) {
	opts = append([]pkarrclient.ResolveOption{pkarrclient.Uncached(), pkarrclient.SettleWait(defaultConfig().readSettle)}, opts...)
	p, err := client.Resolve(ctx, key, opts...)
	if err != nil {
		return "", 0, err
	}
	id, ok := canSyncOccupant(p)
	if !ok {
		return "", p.Timestamp(), fmt.Errorf("slotdiscovery: can-sync slot %s holds no ID: %w", key, pkarrclient.ErrNotFound)
	}
	return id, p.Timestamp(), nil
}

// canSyncOccupant is can-sync's read_slot applied to a packet.
func canSyncOccupant(p *pkarrclient.SignedPacket) (string, bool) {
	// pkarr's resource_records compares the normalized owner name exactly,
	// case included, where SignedPacket.TXT ignores case; so walk the
	// records RecordsNamed returns (in the same order TXT reads them) and
	// keep only exact matches.
	want := CanSyncRecordName + "." + p.PublicKey().String()
	values := p.TXT(CanSyncRecordName)
	n := 0
	for _, rr := range p.RecordsNamed(CanSyncRecordName) {
		if _, ok := rr.(*dns.TXT); !ok || n >= len(values) {
			continue // TXT selects records exactly so; the bound is defensive
		}
		value := values[n]
		n++
		if strings.TrimSuffix(rr.Header().Name, ".") != want {
			continue
		}
		b, err := hex.DecodeString(strings.TrimSpace(value))
		if err != nil || len(b) != canSyncIDSize {
			continue
		}
		// The first value of the right length decides, even if it is not
		// a key: can-sync returns EndpointId::from_bytes(..).ok() there.
		if _, err := pkarrclient.PublicKeyFromBytes(b); err != nil {
			return "", false
		}
		return hex.EncodeToString(b), true
	}
	return "", false
}

// canSyncFallbackSlot is the slot a peer takes when all eight are full:
// the first 8 bytes of BLAKE3(ID), little-endian, modulo 8.
func canSyncFallbackSlot(id []byte) int {
	h := blake3.Sum256(id)
	return int(binary.LittleEndian.Uint64(h[:8]) % CanSyncSlots)
}

// readSlot is can-sync's read_slot: the ID in slot i, or an error, which
// claims treat as an empty slot.
func (c *CanSync) readSlot(ctx context.Context, i int) (string, pkarrclient.Timestamp, error) {
	return ReadCanSyncSlot(ctx, c.client, c.pubs[i], pkarrclient.SettleWait(c.cfg.readSettle))
}

// locked reports whether a slot packet stamped ts can never be replaced
// by a write of ours: it is stamped beyond the future bound.
func (c *CanSync) locked(ts pkarrclient.Timestamp) bool {
	return ts.After(c.cfg.clock.Now().Add(c.cfg.futureBound))
}

// publishSlot writes slot i: the hex ID as can-sync writes it, or, for an
// empty id, a packet with no records (a leave).
func (c *CanSync) publishSlot(ctx context.Context, i int, id string) error {
	b := pkarrclient.NewBuilder().Timestamp(c.stamper.Next())
	if id != "" {
		b.TXT(CanSyncRecordName, canSyncTTL, id)
	}
	p, err := b.Sign(c.keys[i])
	if err != nil {
		return err
	}
	_, err = c.client.Publish(ctx, p)
	return err
}

// sleepUntil waits on the configured clock until t, or until ctx ends; it
// reports whether ctx is still live.
func (c *CanSync) sleepUntil(ctx context.Context, t time.Time) bool {
	d := t.Sub(c.cfg.clock.Now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := c.cfg.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.Chan():
		return true
	case <-ctx.Done():
		return false
	}
}

// scanLoop scans at once, then on the ticks of a fixed period, as tokio's
// interval ticks: each tick is due at start + k*period, and a tick missed
// because a scan ran long fires at once (tokio's default Burst). An
// announcement's finished claim restarts the schedule from that moment.
func (c *CanSync) scanLoop() {
	defer c.wg.Done()
	next := c.cfg.clock.Now()
	for {
		if d := next.Sub(c.cfg.clock.Now()); d > 0 {
			timer := c.cfg.clock.NewTimer(d)
			select {
			case <-timer.Chan():
			case next = <-c.rescan:
			case <-c.ctx.Done():
				timer.Stop()
				return
			}
			timer.Stop()
		} else {
			select {
			case next = <-c.rescan:
			default:
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		c.scan(c.ctx)
		next = next.Add(c.cfg.scan)
	}
}

// scan is can-sync's scan_all_slots: the eight slots read one after
// another, each newly seen ID (not ours) reported Found. Our addition: if
// every read gave an answer (a packet, or "not found"), a reported peer
// in no slot is reported Lost. A read that failed otherwise (relays
// unreachable) says nothing about who left, so that scan loses no one.
func (c *CanSync) scan(ctx context.Context) {
	c.scanTurn <- struct{}{}
	defer func() { <-c.scanTurn }()
	present := make(map[string]bool, CanSyncSlots)
	complete := true
	for i := range CanSyncSlots {
		id, ts, err := c.readSlot(ctx, i)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !errors.Is(err, pkarrclient.ErrNotFound) {
				complete = false
				c.log.Debug("can-sync: slot read failed", "slot", i, "err", err)
			}
			continue
		}
		present[id] = true
		if c.report(id, ts) {
			c.log.Debug("can-sync: discovered peer", "slot", i, "id", id)
		}
	}
	if !complete {
		return
	}
	for _, p := range c.tracker.Peers() {
		if !present[p.ID] && c.tracker.Remove(p.ID) {
			c.log.Debug("can-sync: peer in no slot any more", "id", p.ID)
		}
	}
}

// report upserts the peer id unless it is one of ours, and reports whether
// it is news (Found). The check and the upsert happen under c.mu, as
// Announce marks an ID ours and forgets it as a peer, so a scan racing an
// Announce cannot report the announcing peer to itself.
func (c *CanSync) report(id string, ts pkarrclient.Timestamp) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.own[id]; ok {
		return false
	}
	seen := ts.Time()
	if now := c.cfg.clock.Now(); seen.After(now) {
		seen = now // a packet stamped ahead: seen alive now, not later
	}
	p := discovery.Peer{
		Record:  discovery.Record{ID: id},
		Sources: []string{c.cfg.name},
		Seen:    seen,
	}
	return c.tracker.Upsert(p) == discovery.Found
}

// canSyncAnnouncement is one running can-sync announcement: can-sync's
// Rendezvous::run for one ID.
type canSyncAnnouncement struct {
	c       *CanSync
	id      string
	idBytes []byte
	ctx     context.Context // ends with Announce's ctx, Leave or Close
	cancel  context.CancelFunc
	done    chan struct{} // closed once the slot is cleared and the ID free

	// touched is the set of slots this announcement wrote to or took
	// over, so its leave knows where its ID may be. Only run uses it.
	touched [CanSyncSlots]bool

	mu    sync.Mutex
	ended bool
}

// Record implements [discovery.Announcement.Record].
func (a *canSyncAnnouncement) Record() discovery.Record {
	return discovery.Record{ID: a.id}
}

// Update implements [discovery.Announcement.Update]. The wire carries only
// the ID, which cannot change: an Update with the same ID and nothing else
// is a no-op, anything else is ErrInvalidRecord; after the announcement
// ended, ErrLeft.
func (a *canSyncAnnouncement) Update(_ context.Context, rec discovery.Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if a.isEnded() {
		return discovery.ErrLeft
	}
	if rec.ID != a.id {
		return fmt.Errorf("%w: the ID cannot change (%q to %q)", discovery.ErrInvalidRecord, a.id, rec.ID)
	}
	if len(rec.Addrs) > 0 || len(rec.Meta) > 0 {
		return fmt.Errorf("%w: can-sync's wire carries only the ID, so Addrs and Meta must be empty", discovery.ErrInvalidRecord)
	}
	return nil
}

// Leave implements [discovery.Announcement.Leave]: it stops republishing
// and, if our slot still holds our ID, clears it with an empty packet, so
// other Go peers see us Lost at their next scan. It waits for that, within
// ctx, and returns an error wrapping ctx's if ctx ended first. The clearing
// goes on in the background within the leave bound (5 s, see
// [WithLeaveTimeout]), as [Discoverer]'s tombstone does: a short ctx means
// "do not wait", not "do not tell the others". It is idempotent.
func (a *canSyncAnnouncement) Leave(ctx context.Context) error {
	a.mu.Lock()
	a.ended = true
	a.mu.Unlock()
	a.cancel()
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		select {
		case <-a.done: // both ready: the slot is cleared
			return nil
		default:
		}
		return fmt.Errorf("slotdiscovery: leave: the slot is still being cleared (it goes on within the leave bound): %w", ctx.Err())
	}
}

func (a *canSyncAnnouncement) isEnded() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ended || a.ctx.Err() != nil
}

// run is can-sync's Rendezvous::run: claim a slot, scan once, then
// republish on the ticks of the republish interval, the first tick at once
// (tokio's interval fires its first tick immediately). The scan ticks
// belong to the CanSync's scan loop, which this restarts as can-sync's
// scan interval starts after its claim. Then the leave.
func (a *canSyncAnnouncement) run() {
	c := a.c
	defer c.wg.Done()
	defer close(a.done)
	defer a.forget()
	defer a.leave()

	slot, ok := a.claim(a.ctx)
	if !ok {
		return
	}
	c.log.Debug("can-sync: claimed slot", "slot", slot, "id", a.id)
	start := c.cfg.clock.Now() // when can-sync creates its intervals
	c.scan(a.ctx)
	select {
	case c.rescan <- start:
	default: // a restart is already pending
	}
	for next := start; c.sleepUntil(a.ctx, next); next = next.Add(c.cfg.republish) {
		if err := c.publishSlot(a.ctx, slot, a.id); err != nil && a.ctx.Err() == nil {
			c.log.Warn("can-sync: failed to re-publish", "slot", slot, "err", err)
		}
	}
}

// claim is can-sync's claim_slot, except that it never takes a locked
// slot (see [CanSync]). It reports false if ctx ended before a slot was
// chosen.
func (a *canSyncAnnouncement) claim(ctx context.Context) (int, bool) {
	c := a.c
	// The slot that already holds our ID, from an earlier run.
	for i := range CanSyncSlots {
		id, ts, err := c.readSlot(ctx, i)
		if ctx.Err() != nil {
			return 0, false
		}
		if err == nil && id == a.id && !c.locked(ts) {
			a.touched[i] = true
			return i, true
		}
	}
	// The first empty one. Any read error counts as empty: can-sync's
	// read_slot cannot tell an unreachable relay from an empty slot.
	var locked [CanSyncSlots]bool
	for i := range CanSyncSlots {
		_, ts, err := c.readSlot(ctx, i)
		if ctx.Err() != nil {
			return 0, false
		}
		if locked[i] = c.locked(ts); locked[i] {
			c.log.Warn("can-sync: slot locked by a packet stamped beyond the future bound", "slot", i, "timestamp", ts)
			continue
		}
		if err == nil {
			continue
		}
		a.touched[i] = true
		if err := c.publishSlot(ctx, i, a.id); err != nil {
			if ctx.Err() != nil {
				return 0, false
			}
			c.log.Warn("can-sync: failed to claim slot", "slot", i, "err", err)
			continue
		}
		return i, true
	}
	// All full: the slot the ID hashes to, whoever holds it, or the first
	// after it that is not locked. With all eight locked nothing can be
	// written; the hash's slot is as good as any.
	slot := canSyncFallbackSlot(a.idBytes)
	for k := range CanSyncSlots {
		if s := (slot + k) % CanSyncSlots; !locked[s] {
			slot = s
			break
		}
	}
	a.touched[slot] = true
	if err := c.publishSlot(ctx, slot, a.id); err != nil && ctx.Err() == nil {
		c.log.Debug("can-sync: fallback claim failed", "slot", slot, "err", err)
	}
	return slot, ctx.Err() == nil
}

// leave ends the announcement and clears every slot it touched that still
// holds its ID, within the leave bound (on the configured clock), whatever
// becomes of the Leave or Close call that started it.
func (a *canSyncAnnouncement) leave() {
	c := a.c
	a.mu.Lock()
	a.ended = true
	a.mu.Unlock()
	a.cancel()

	ctx, cancel := context.WithCancel(context.WithoutCancel(a.ctx))
	defer cancel()
	timer := c.cfg.clock.AfterFunc(c.cfg.leaveTimeout, cancel)
	defer timer.Stop()
	for i, touched := range a.touched {
		if !touched {
			continue
		}
		id, _, err := c.readSlot(ctx, i)
		if ctx.Err() != nil {
			c.log.Debug("can-sync: leave cut short", "slot", i)
			return
		}
		if err != nil || id != a.id {
			continue
		}
		if err := c.publishSlot(ctx, i, ""); err != nil {
			c.log.Debug("can-sync: failed to clear slot", "slot", i, "err", err)
			continue
		}
		c.log.Debug("can-sync: cleared slot", "slot", i, "id", a.id)
	}
}

// forget frees the ID for a new announcement.
func (a *canSyncAnnouncement) forget() {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.announced[a.id] == a {
		delete(c.announced, a.id)
	}
}
