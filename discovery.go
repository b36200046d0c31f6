// Package discovery defines what every phrasemeet discovery mechanism is:
// a [Discoverer], which announces this peer and reports the peers it finds
// as a stream of [Event]s. The passphrase slot rendezvous, mDNS and the
// in-memory [Memory] all implement it, [Combine] runs several as one, and
// the adapters (go-libp2p's core/discovery, the chat) consume it.
//
// The interface departs from go-libp2p's in two ways, both on purpose. An
// announcement keeps itself alive until its context ends or the peer
// leaves, so no caller can forget to repeat it and silently vanish. And
// results are a stream of Found, Updated and Lost events for every
// subscriber, a late subscriber first receiving the peers already known,
// so departures and address changes are news rather than something each
// caller must infer by polling.
//
// Every implementation proves itself with one call to the conformance
// suite in package discoverytest.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Record is what a peer announces about itself.
type Record struct {
	// ID identifies the peer, stable for its lifetime and unique in the
	// group: an endpoint's public key in hex, a libp2p peer ID's string.
	// It must not be empty.
	ID string
	// Addrs are how to reach the peer (multiaddrs, host:port pairs, URLs),
	// in order of preference.
	Addrs []string
	// Meta is small opaque application data. Mechanisms bound its size
	// (the slot rendezvous fits a record into a pkarr packet).
	Meta []byte
}

// Validate reports whether r can be announced: an ID is required.
func (r Record) Validate() error {
	if r.ID == "" {
		return fmt.Errorf("%w: empty ID", ErrInvalidRecord)
	}
	return nil
}

// Clone returns a deep copy, so a receiver can keep a record its sender
// goes on modifying.
func (r Record) Clone() Record {
	return Record{ID: r.ID, Addrs: slices.Clone(r.Addrs), Meta: slices.Clone(r.Meta)}
}

// Equal reports whether two records announce the same thing.
func (r Record) Equal(o Record) bool {
	return r.ID == o.ID && slices.Equal(r.Addrs, o.Addrs) && string(r.Meta) == string(o.Meta)
}

// Peer is a record as a discoverer found it.
type Peer struct {
	Record
	// Sources names the discoverers that currently know the peer, by
	// [Discoverer.Name]: one for a single mechanism, possibly several
	// under [Combine].
	Sources []string
	// Seen is when the peer was last known to be alive: the signed time
	// of its newest record, for mechanisms that have one.
	Seen time.Time
}

// Clone returns a deep copy of p.
func (p Peer) Clone() Peer {
	return Peer{Record: p.Record.Clone(), Sources: slices.Clone(p.Sources), Seen: p.Seen}
}

// EventType says what happened to a peer.
type EventType uint8

// The event types.
const (
	// Found: a peer not known before (or lost since) is known now.
	Found EventType = iota + 1
	// Updated: a known peer announced a different record (addresses or
	// metadata), or, under Combine, another member found it too.
	Updated
	// Lost: the peer left, or its announcement aged out.
	Lost
)

func (t EventType) String() string {
	switch t {
	case Found:
		return "found"
	case Updated:
		return "updated"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one change in what a discoverer knows.
type Event struct {
	Type EventType
	// Peer is the peer as known after the change; for Lost, as it was
	// last known.
	Peer Peer
	// Time is when the discoverer noticed the change.
	Time time.Time
}

// Discoverer announces this peer to a group and reports the group's other
// members. Implementations are safe for concurrent use.
//
// A Discoverer never reports a record it announces itself.
type Discoverer interface {
	// Name identifies the mechanism in [Peer.Sources] and in logs.
	Name() string

	// Announce starts announcing rec and keeps the announcement alive by
	// itself (republishing as its mechanism needs) until ctx ends, the
	// returned Announcement's Leave is called, or the Discoverer is
	// closed. When ctx ends the peer stops announcing; depending on the
	// mechanism others see it Lost at once or once its record ages out.
	// Leave is the graceful exit: others see Lost as soon as the
	// mechanism can tell them.
	//
	// Announce returns once the announcement has started, not when others
	// have seen it. A second Announce with the same ID is refused with
	// ErrAlreadyAnnounced; use Announcement.Update to change a record.
	Announce(ctx context.Context, rec Record) (Announcement, error)

	// Subscribe returns a stream of events. A new subscriber first
	// receives a Found for every peer already known. The channel is
	// closed when ctx ends or the Discoverer is closed.
	//
	// A slow subscriber delays no one, and costs memory bounded by the
	// number of peers, not of events: what it has not read yet is kept
	// as at most one pending change per peer. Reading late, it may miss
	// intermediate records (Found then Updated arrives as Found with the
	// newest record, several Updated as the newest) and peers that came
	// and went meanwhile (it sees neither their Found nor their Lost); a
	// peer it knew that left and came back arrives as Lost then Found.
	// Whatever it reads is consistent: never Updated or Lost for a peer
	// it was not told was Found, never Found for one it knows, never an
	// Updated that changes nothing it was told; each peer's events come
	// in order, and once it has read everything its view is the
	// Discoverer's. Peers come in the order their pending change began.
	Subscribe(ctx context.Context) (<-chan Event, error)

	// Close stops every announcement (as a Leave would, within a short
	// bound) and closes every subscription. It is idempotent.
	Close() error
}

// Announcement is a running announcement.
type Announcement interface {
	// Record returns the record being announced.
	Record() Record
	// Update replaces the announced record, for instance when the peer's
	// addresses change; others see Updated. The ID cannot change.
	Update(ctx context.Context, rec Record) error
	// Leave stops announcing and tells others the peer is gone, as far as
	// the mechanism can before ctx ends. It is idempotent.
	Leave(ctx context.Context) error
}

// Errors shared by every implementation, for errors.Is.
var (
	// ErrInvalidRecord: the record cannot be announced (empty ID, too
	// large for the mechanism).
	ErrInvalidRecord = errors.New("discovery: invalid record")
	// ErrAlreadyAnnounced: this Discoverer already announces that ID.
	ErrAlreadyAnnounced = errors.New("discovery: ID already announced")
	// ErrLeft: the announcement has ended (Leave, its context, Close).
	ErrLeft = errors.New("discovery: announcement ended")
	// ErrClosed: the Discoverer is closed.
	ErrClosed = errors.New("discovery: closed")
)

// Tracker is the bookkeeping every Discoverer needs, for implementations
// to share: the peers known now, and a queue per subscriber so a slow one
// delays no one. Implementations report what they see with Upsert and
// Remove; the Tracker turns that into Found, Updated and Lost events and
// replays the known peers to each new subscriber. Each subscriber's queue
// coalesces per peer, as [Discoverer.Subscribe] describes, so one that
// stops reading holds at most about two events per peer.
//
// A Tracker is safe for concurrent use. Its zero value is not usable; call
// [NewTracker].
type Tracker struct {
	now func() time.Time

	mu     sync.Mutex
	closed bool
	peers  map[string]Peer
	subs   map[*subscriber]struct{}
	wg     sync.WaitGroup
}

// NewTracker returns an empty Tracker. now stamps events; nil means
// time.Now.
func NewTracker(now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{now: now, peers: make(map[string]Peer), subs: make(map[*subscriber]struct{})}
}

// Upsert records p as known and emits Found (new) or Updated (record,
// sources or nothing else changed). It reports the event emitted, or 0
// when p was already known exactly so (a newer Seen alone is not news).
func (t *Tracker) Upsert(p Peer) EventType {
	p = p.Clone()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0
	}
	old, known := t.peers[p.ID]
	t.peers[p.ID] = p
	switch {
	case !known:
		t.emitLocked(Event{Type: Found, Peer: p, Time: t.now()})
		return Found
	case !old.Record.Equal(p.Record) || !slices.Equal(old.Sources, p.Sources):
		t.emitLocked(Event{Type: Updated, Peer: p, Time: t.now()})
		return Updated
	}
	return 0
}

// Remove forgets the peer and emits Lost. It reports whether the peer was
// known.
func (t *Tracker) Remove(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, known := t.peers[id]
	if !known || t.closed {
		return false
	}
	delete(t.peers, id)
	t.emitLocked(Event{Type: Lost, Peer: p, Time: t.now()})
	return true
}

// Get returns the peer with the given ID, if known.
func (t *Tracker) Get(id string) (Peer, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[id]
	return p.Clone(), ok
}

// Peers returns the peers known now, ordered by ID.
func (t *Tracker) Peers() []Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Peer, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, p.Clone())
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Subscribe implements [Discoverer.Subscribe] for the Tracker's peers.
func (t *Tracker) Subscribe(ctx context.Context) (<-chan Event, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	s := &subscriber{out: make(chan Event), wake: make(chan struct{}, 1), done: make(chan struct{}), queue: newEventQueue()}
	ids := make([]string, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	now := t.now()
	for _, id := range ids {
		s.queue.push(Event{Type: Found, Peer: t.peers[id].Clone(), Time: now})
	}
	t.subs[s] = struct{}{}
	t.wg.Add(1)
	go t.deliver(ctx, s)
	return s.out, nil
}

// Close closes every subscription and waits for their goroutines. Later
// Upserts and Removes are ignored; later Subscribes fail with ErrClosed.
func (t *Tracker) Close() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		for s := range t.subs {
			close(s.done)
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

func (t *Tracker) emitLocked(e Event) {
	for s := range t.subs {
		s.mu.Lock()
		s.queue.push(e)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// subscriber is one Subscribe call: its own queue, drained by its own
// goroutine, so delivering to it never blocks the Tracker, and coalesced
// per peer, so a subscriber that stops reading holds memory bounded by
// the number of peers.
type subscriber struct {
	out  chan Event
	wake chan struct{}
	done chan struct{} // closed by Tracker.Close

	mu    sync.Mutex
	queue *eventQueue
}

func (t *Tracker) deliver(ctx context.Context, s *subscriber) {
	defer t.wg.Done()
	defer close(s.out)
	defer func() {
		t.mu.Lock()
		delete(t.subs, s)
		t.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		next, have := s.queue.pop()
		s.mu.Unlock()
		if !have {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
		select {
		case s.out <- next:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// Memory is an in-process rendezvous space: every Discoverer joined to the
// same Memory sees the others' announcements at once, and a leave or an
// ended announcement as Lost at once. It is for tests and examples, and is
// the reference the conformance suite is written against.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	members map[*memoryMember]struct{}
	records map[string]*memoryAnnouncement // by ID, across the space
}

// NewMemory returns an empty space.
func NewMemory() *Memory {
	return &Memory{
		now:     time.Now,
		members: make(map[*memoryMember]struct{}),
		records: make(map[string]*memoryAnnouncement),
	}
}

// Join returns a new Discoverer in the space, which immediately knows every
// record announced there. name is its [Discoverer.Name] ("memory" if
// empty).
func (m *Memory) Join(name string) Discoverer {
	if name == "" {
		name = "memory"
	}
	d := &memoryMember{space: m, name: name, tracker: NewTracker(m.now), own: make(map[*memoryAnnouncement]struct{})}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members[d] = struct{}{}
	for _, a := range m.records {
		d.tracker.Upsert(d.peer(a.rec))
	}
	return d
}

type memoryMember struct {
	space   *Memory
	name    string
	tracker *Tracker
	wg      sync.WaitGroup // announcement watchers

	// Guarded by space.mu.
	closed bool
	own    map[*memoryAnnouncement]struct{}
}

func (d *memoryMember) Name() string { return d.name }

// peer is rec as this member sees it.
func (d *memoryMember) peer(rec Record) Peer {
	return Peer{Record: rec, Sources: []string{d.name}, Seen: d.space.now()}
}

func (d *memoryMember) Announce(ctx context.Context, rec Record) (Announcement, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := d.space
	a := &memoryAnnouncement{owner: d, rec: rec.Clone(), done: make(chan struct{})}
	m.mu.Lock()
	switch {
	case d.closed:
		m.mu.Unlock()
		return nil, ErrClosed
	case m.records[rec.ID] != nil:
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrAlreadyAnnounced, rec.ID)
	}
	m.records[rec.ID] = a
	d.own[a] = struct{}{}
	m.publishLocked(a)
	d.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer d.wg.Done()
		select {
		case <-ctx.Done():
			a.end()
		case <-a.done:
		}
	}()
	return a, nil
}

func (d *memoryMember) Subscribe(ctx context.Context) (<-chan Event, error) {
	return d.tracker.Subscribe(ctx)
}

func (d *memoryMember) Close() error {
	m := d.space
	m.mu.Lock()
	if d.closed {
		m.mu.Unlock()
		d.wg.Wait()
		return nil
	}
	d.closed = true
	delete(m.members, d)
	var own []*memoryAnnouncement
	for a := range d.own {
		own = append(own, a)
	}
	m.mu.Unlock()
	for _, a := range own {
		a.end()
	}
	d.wg.Wait()
	d.tracker.Close()
	return nil
}

// publishLocked shows a's record to every other member.
func (m *Memory) publishLocked(a *memoryAnnouncement) {
	for d := range m.members {
		if d != a.owner {
			d.tracker.Upsert(d.peer(a.rec))
		}
	}
}

type memoryAnnouncement struct {
	owner *memoryMember
	done  chan struct{} // closed when the announcement ends

	// Guarded by owner.space.mu.
	rec   Record
	ended bool
}

func (a *memoryAnnouncement) Record() Record {
	m := a.owner.space
	m.mu.Lock()
	defer m.mu.Unlock()
	return a.rec.Clone()
}

func (a *memoryAnnouncement) Update(ctx context.Context, rec Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	m := a.owner.space
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case a.ended:
		return ErrLeft
	case rec.ID != a.rec.ID:
		return fmt.Errorf("%w: the ID cannot change (%q to %q)", ErrInvalidRecord, a.rec.ID, rec.ID)
	}
	a.rec = rec.Clone()
	m.publishLocked(a)
	return nil
}

func (a *memoryAnnouncement) Leave(context.Context) error {
	a.end()
	return nil
}

// end withdraws the record from the space, once.
func (a *memoryAnnouncement) end() {
	m := a.owner.space
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.ended {
		return
	}
	a.ended = true
	close(a.done)
	delete(m.records, a.rec.ID)
	delete(a.owner.own, a)
	for d := range m.members {
		if d != a.owner {
			d.tracker.Remove(a.rec.ID)
		}
	}
}

// Combine runs several discoverers as one. It announces through every
// member and merges what they find: a peer found by two members is one
// peer, Found once, with both in [Peer.Sources] (the record shown is the
// one seen most recently), and Lost only when the last member loses it. A
// member that fails to announce or to subscribe does not stop the others;
// Announce fails only if every member failed.
//
// Combine takes ownership of its members: Close closes them.
func Combine(members ...Discoverer) Discoverer {
	names := make([]string, len(members))
	for i, d := range members {
		names[i] = d.Name()
	}
	c := &combined{
		name:    "combine(" + strings.Join(names, ",") + ")",
		members: slices.Clone(members),
		tracker: NewTracker(nil),
		known:   make(map[string]map[int]Peer),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i, d := range c.members {
		events, err := d.Subscribe(c.ctx)
		if err != nil {
			// It still announces; it just contributes no peers.
			continue
		}
		c.wg.Add(1)
		go c.follow(i, events)
	}
	return c
}

type combined struct {
	name    string
	members []Discoverer
	tracker *Tracker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	known map[string]map[int]Peer // peer ID -> member index -> peer as that member knows it

	closeOnce sync.Once
	closeErr  error
}

func (c *combined) Name() string { return c.name }

// follow merges one member's events into the combined view.
func (c *combined) follow(i int, events <-chan Event) {
	defer c.wg.Done()
	for e := range events {
		c.mu.Lock()
		bySource := c.known[e.Peer.ID]
		if e.Type == Lost {
			delete(bySource, i)
		} else {
			if bySource == nil {
				bySource = make(map[int]Peer)
				c.known[e.Peer.ID] = bySource
			}
			bySource[i] = e.Peer
		}
		if len(bySource) == 0 {
			delete(c.known, e.Peer.ID)
			c.tracker.Remove(e.Peer.ID)
		} else {
			c.tracker.Upsert(c.mergeLocked(bySource))
		}
		c.mu.Unlock()
	}
}

// mergeLocked is one peer as the members know it: the most recently seen
// record, and every member that knows it, in member order.
func (c *combined) mergeLocked(bySource map[int]Peer) Peer {
	var merged Peer
	first := true
	for i := range c.members {
		p, ok := bySource[i]
		if !ok {
			continue
		}
		if first || p.Seen.After(merged.Seen) {
			merged.Record, merged.Seen = p.Record, p.Seen
		}
		first = false
		for _, s := range p.Sources {
			if !slices.Contains(merged.Sources, s) {
				merged.Sources = append(merged.Sources, s)
			}
		}
	}
	return merged
}

func (c *combined) Announce(ctx context.Context, rec Record) (Announcement, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	a := &combinedAnnouncement{rec: rec.Clone()}
	var errs []error
	for _, d := range c.members {
		ma, err := d.Announce(ctx, rec)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Name(), err))
			continue
		}
		a.members = append(a.members, ma)
	}
	if len(a.members) == 0 {
		return nil, fmt.Errorf("discovery: no member could announce: %w", errors.Join(errs...))
	}
	return a, nil
}

func (c *combined) Subscribe(ctx context.Context) (<-chan Event, error) {
	return c.tracker.Subscribe(ctx)
}

func (c *combined) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for _, d := range c.members {
			if err := d.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.Name(), err))
			}
		}
		c.cancel()
		c.wg.Wait()
		c.tracker.Close()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

type combinedAnnouncement struct {
	members []Announcement

	mu  sync.Mutex
	rec Record
}

func (a *combinedAnnouncement) Record() Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec.Clone()
}

// Update updates every member's announcement; it fails only if all did.
func (a *combinedAnnouncement) Update(ctx context.Context, rec Record) error {
	var errs []error
	for _, m := range a.members {
		if err := m.Update(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(a.members) {
		return errors.Join(errs...)
	}
	a.mu.Lock()
	a.rec = rec.Clone()
	a.mu.Unlock()
	return nil
}

// Leave leaves through every member, in parallel, and reports every
// failure.
func (a *combinedAnnouncement) Leave(ctx context.Context) error {
	errs := make([]error, len(a.members))
	var wg sync.WaitGroup
	for i, m := range a.members {
		wg.Go(func() { errs[i] = m.Leave(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
