package discovery

import (
	"container/list"
	"slices"
)

// eventQueue is what one subscriber has not received yet, coalesced per
// peer so that its size is bounded by the number of peers, not the number
// of events: a subscriber that stops reading while peers churn costs a
// fixed amount of memory.
//
// The queue keeps the subscriber's view right. It remembers what the
// subscriber has been told (told), and for each peer holds at most one
// pending change from that view, delivered in the order the peers first
// had something pending:
//
//   - Found then Updated is Found with the newest record, and Updated then
//     Updated is the newest Updated: intermediate records are skipped.
//   - Found then Lost is nothing: a peer the subscriber was never told of
//     came and went unseen. Updated then Lost is Lost.
//   - Lost then Found is both, in that order: the peer the subscriber
//     knew left and came back, which a connector or a chat shows (a
//     fresh start, "left", "joined"), so it is not folded into Updated.
//   - An Updated that brings the peer back to what the subscriber was
//     told is dropped when its turn comes.
//
// So a subscriber never sees Updated or Lost for a peer it was not told
// was Found, nor Found for one it knows, and once it has read everything
// its view is the Tracker's.
type eventQueue struct {
	order   list.List                // of *pending, oldest first
	pending map[string]*list.Element // by peer ID
	told    map[string]Peer          // the subscriber's view, as delivered
}

// pending is one peer's undelivered change: a Lost owed for the peer the
// subscriber knows, then a Found or Updated to the newest record.
type pending struct {
	id      string
	lost    Event
	hasLost bool
	next    Event
	hasNext bool
}

func newEventQueue() *eventQueue {
	return &eventQueue{pending: make(map[string]*list.Element), told: make(map[string]Peer)}
}

// push adds e, merging it with what is pending for its peer.
func (q *eventQueue) push(e Event) {
	el := q.pending[e.Peer.ID]
	if el == nil {
		p := &pending{id: e.Peer.ID}
		if e.Type == Lost {
			p.lost, p.hasLost = e, true
		} else {
			p.next, p.hasNext = e, true
		}
		q.pending[e.Peer.ID] = q.order.PushBack(p)
		return
	}
	p := el.Value.(*pending)
	switch {
	case e.Type == Lost && p.hasNext && p.next.Type == Found:
		// The subscriber never heard of this appearance: forget it. A
		// Lost owed from before stays as it was.
		p.next, p.hasNext = Event{}, false
	case e.Type == Lost:
		// The subscriber knows the peer (pending Updated, or nothing
		// pending but a Lost): the newest Lost replaces both.
		p.lost, p.hasLost = e, true
		p.next, p.hasNext = Event{}, false
	case p.hasNext:
		// Found or Updated onto a pending Found or Updated: the kind of
		// news stays, the record is the newest.
		typ := p.next.Type
		p.next = e
		p.next.Type = typ
	default:
		// Found (or, from a buggy source, Updated) after a pending Lost:
		// the peer is back.
		p.next, p.hasNext = e, true
		p.next.Type = Found
	}
	if !p.hasLost && !p.hasNext {
		q.order.Remove(el)
		delete(q.pending, p.id)
	}
}

// pop returns the next event to deliver, counting it as told.
func (q *eventQueue) pop() (Event, bool) {
	for {
		el := q.order.Front()
		if el == nil {
			return Event{}, false
		}
		p := el.Value.(*pending)
		var e Event
		if p.hasLost {
			e = p.lost
			p.lost, p.hasLost = Event{}, false
		} else {
			e = p.next
			p.next, p.hasNext = Event{}, false
		}
		if !p.hasLost && !p.hasNext {
			q.order.Remove(el)
			delete(q.pending, p.id)
		}
		old, known := q.told[e.Peer.ID]
		switch {
		case e.Type == Lost:
			delete(q.told, e.Peer.ID)
		case e.Type == Updated && known && old.Record.Equal(e.Peer.Record) && slices.Equal(old.Sources, e.Peer.Sources):
			continue // back to what the subscriber has: no news
		default:
			q.told[e.Peer.ID] = e.Peer
		}
		return e, true
	}
}

// len is the number of events waiting.
func (q *eventQueue) len() int {
	n := 0
	for el := q.order.Front(); el != nil; el = el.Next() {
		p := el.Value.(*pending)
		if p.hasLost {
			n++
		}
		if p.hasNext {
			n++
		}
	}
	return n
}
