package discovery

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
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
