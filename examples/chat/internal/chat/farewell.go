package chat

import (
	"context"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// Farewells keeps the room's connector from dialing members that said
// goodbye. Discovery goes on listing a member for a while after it left
// (the slot rendezvous until its tombstone is read, a scan or more later),
// and the connector redials whatever discovery lists whose connection
// closed: each of those dials would be for nobody. So the connector reads
// discovery through Farewells, which on a goodbye tells it the member is
// Lost and then hides that member's listing, until discovery lists it
// again with a new session: lost and found again, or a record of its
// own that differs (a restart listens on new ports), or its new session's
// hello reaching the room through another member.
type Farewells struct {
	mu   sync.Mutex
	last map[peer.ID]discovery.Peer // as discovery last listed each peer
	// gone holds the members that said goodbye, each with the record it
	// was listed with then; zero once discovery lost it since.
	gone map[peer.ID]discovery.Record
	subs map[*farewellSub]struct{}
}

// farewellSub is one subscription through Farewells: the events
// Farewells adds (the Lost of a goodbye, the Found of a return) wait in
// pending, and kick wakes the goroutine that forwards them.
type farewellSub struct {
	pending []discovery.Event
	kick    chan struct{}
}

func newFarewells() *Farewells {
	return &Farewells{last: make(map[peer.ID]discovery.Peer), gone: make(map[peer.ID]discovery.Record),
		subs: make(map[*farewellSub]struct{})}
}

// Subscriber returns src as seen through f.
func (f *Farewells) Subscriber(src libp2padapter.Subscriber) libp2padapter.Subscriber {
	return farewellSource{f: f, src: src}
}

type farewellSource struct {
	f   *Farewells
	src libp2padapter.Subscriber
}

func (s farewellSource) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	in, err := s.src.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	sub := &farewellSub{kick: make(chan struct{}, 1)}
	s.f.mu.Lock()
	s.f.subs[sub] = struct{}{}
	s.f.mu.Unlock()
	out := make(chan discovery.Event)
	go s.f.forward(ctx, sub, in, out)
	return out, nil
}

// forward passes in's events to out, but those Farewells hides, and the
// events Farewells adds.
func (f *Farewells) forward(ctx context.Context, sub *farewellSub, in <-chan discovery.Event, out chan<- discovery.Event) {
	defer close(out)
	defer func() {
		f.mu.Lock()
		delete(f.subs, sub)
		f.mu.Unlock()
	}()
	for {
		var batch []discovery.Event
		select {
		case e, ok := <-in:
			if !ok {
				return
			}
			if f.pass(e) {
				batch = append(batch, e)
			}
		case <-sub.kick:
		case <-ctx.Done():
			return
		}
		f.mu.Lock()
		batch, sub.pending = append(sub.pending, batch...), nil
		f.mu.Unlock()
		for _, e := range batch {
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}
}

// pass notes what discovery lists and reports whether e goes on to the
// connector: not while it lists a member that said goodbye as it did
// then.
func (f *Farewells) pass(e discovery.Event) bool {
	id, err := peer.Decode(e.Peer.ID)
	if err != nil || id.String() != e.Peer.ID {
		// Not a libp2p peer ID as the connector takes it (canonical):
		// the connector ignores it, and a Lost made of it would be lost
		// on the connector too.
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.Type == discovery.Lost {
		delete(f.last, id)
		if _, ok := f.gone[id]; ok {
			// Whatever it is listed with next is a new listing.
			f.gone[id] = discovery.Record{}
		}
		return true
	}
	f.last[id] = e.Peer
	if rec, ok := f.gone[id]; ok {
		if rec.ID != "" && rec.Equal(e.Peer.Record) {
			return false // the session that said goodbye
		}
		delete(f.gone, id)
	}
	return true
}

// said records p's goodbye: the connector drops p (a Lost) and dials it
// no more until it is listed with a new session.
func (f *Farewells) said(p peer.ID) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	last, listed := f.last[p]
	if !listed {
		// Never listed, so never dialed: its first listing may as well
		// be a new session's.
		return
	}
	f.gone[p] = last.Record
	f.addLocked(discovery.Event{Type: discovery.Lost, Peer: last})
}

// back records that a member that said goodbye is here again as another
// session (the room heard from it through another member): the connector
// may dial it again, at the addresses discovery last listed.
func (f *Farewells) back(p peer.ID) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.gone[p]; !ok {
		return
	}
	delete(f.gone, p)
	if last, listed := f.last[p]; listed {
		f.addLocked(discovery.Event{Type: discovery.Found, Peer: last})
	}
}

// addLocked queues e for every subscription, in place of an event for
// the same peer still queued: only the newest matters, and the queue
// stays bounded by the peers listed, whatever a member sends.
func (f *Farewells) addLocked(e discovery.Event) {
	for sub := range f.subs {
		sub.pending = slices.DeleteFunc(sub.pending, func(q discovery.Event) bool { return q.Peer.ID == e.Peer.ID })
		sub.pending = append(sub.pending, e)
		select {
		case sub.kick <- struct{}{}:
		default:
		}
	}
}
