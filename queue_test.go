package discovery

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ev builds an event for peer id whose record is version v.
func ev(typ EventType, id string, v int) Event {
	return Event{
		Type: typ,
		Peer: Peer{Record: Record{ID: id, Addrs: []string{fmt.Sprintf("v%d", v)}}, Sources: []string{"t"}},
		Time: time.Unix(int64(v), 0),
	}
}

// show spells events as "found a v1, lost b v2" for comparison.
func show(es []Event) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%v %s %s", e.Type, e.Peer.ID, strings.Join(e.Peer.Addrs, ","))
	}
	return strings.Join(parts, ", ")
}

func drain(q *eventQueue) []Event {
	var out []Event
	for {
		e, ok := q.pop()
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

// TestEventQueueCoalesces pins each coalescing rule: what a subscriber
// that did not read between the pushes receives.
func TestEventQueueCoalesces(t *testing.T) {
	for _, c := range []struct {
		name  string
		told  []Event // delivered before the pushes
		push  []Event
		want  string
		queue int // events waiting after the pushes
	}{
		{
			name:  "found then updated is found with the newest record",
			push:  []Event{ev(Found, "a", 1), ev(Updated, "a", 2), ev(Updated, "a", 3)},
			want:  "found a v3",
			queue: 1,
		},
		{
			name:  "found then lost of a peer never told is nothing",
			push:  []Event{ev(Found, "a", 1), ev(Updated, "a", 2), ev(Lost, "a", 2)},
			want:  "",
			queue: 0,
		},
		{
			name:  "updated then updated is the newest updated",
			told:  []Event{ev(Found, "a", 1)},
			push:  []Event{ev(Updated, "a", 2), ev(Updated, "a", 3)},
			want:  "updated a v3",
			queue: 1,
		},
		{
			name:  "updated then lost is lost",
			told:  []Event{ev(Found, "a", 1)},
			push:  []Event{ev(Updated, "a", 2), ev(Lost, "a", 2)},
			want:  "lost a v2",
			queue: 1,
		},
		{
			name:  "lost then found is both, with the newest record",
			told:  []Event{ev(Found, "a", 1)},
			push:  []Event{ev(Lost, "a", 1), ev(Found, "a", 2), ev(Updated, "a", 3)},
			want:  "lost a v1, found a v3",
			queue: 2,
		},
		{
			name:  "lost, found, lost is the first lost",
			told:  []Event{ev(Found, "a", 1)},
			push:  []Event{ev(Lost, "a", 1), ev(Found, "a", 2), ev(Lost, "a", 2)},
			want:  "lost a v1",
			queue: 1,
		},
		{
			name:  "an update back to what the subscriber has is dropped",
			told:  []Event{ev(Found, "a", 1)},
			push:  []Event{ev(Updated, "a", 2), ev(Updated, "a", 1)},
			want:  "",
			queue: 1,
		},
		{
			name:  "peers keep the order of their first pending change",
			told:  []Event{ev(Found, "b", 1)},
			push:  []Event{ev(Found, "a", 1), ev(Updated, "b", 2), ev(Found, "c", 1), ev(Updated, "a", 2), ev(Lost, "b", 2)},
			want:  "found a v2, lost b v2, found c v1",
			queue: 3,
		},
		{
			name:  "a peer that went and came back queues behind the others",
			push:  []Event{ev(Found, "a", 1), ev(Found, "b", 1), ev(Lost, "a", 1), ev(Found, "a", 2)},
			want:  "found b v1, found a v2",
			queue: 2,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := newEventQueue()
			for _, e := range c.told {
				q.push(e)
			}
			if got := show(drain(q)); got != show(c.told) {
				t.Fatalf("setup delivered %q, want %q", got, show(c.told))
			}
			for _, e := range c.push {
				q.push(e)
			}
			if n := q.len(); n != c.queue {
				t.Errorf("%d events queued, want %d", n, c.queue)
			}
			got := drain(q)
			if show(got) != c.want {
				t.Errorf("delivered %q, want %q", show(got), c.want)
			}
			if n := q.len(); n != 0 || len(q.pending) != 0 || q.order.Len() != 0 {
				t.Errorf("after draining: len %d, %d pending, %d in order", n, len(q.pending), q.order.Len())
			}
		})
	}
}

// TestEventQueueTimes: a coalesced event carries the time of the newest
// change it stands for.
func TestEventQueueTimes(t *testing.T) {
	q := newEventQueue()
	q.push(ev(Found, "a", 1))
	q.push(ev(Updated, "a", 5))
	e, _ := q.pop()
	if !e.Time.Equal(time.Unix(5, 0)) {
		t.Fatalf("coalesced Found at %v, want the newest change's time %v", e.Time, time.Unix(5, 0))
	}
}

// TestEventQueueTold: the queue's record of what the subscriber knows
// follows what it delivered, so it never grows past the live peers.
func TestEventQueueTold(t *testing.T) {
	q := newEventQueue()
	for i := range 100 {
		q.push(ev(Found, fmt.Sprint(i), 1))
		if i%2 == 0 {
			drain(q)
			q.push(ev(Lost, fmt.Sprint(i), 1))
		}
	}
	drain(q)
	if got := len(q.told); got != 50 {
		t.Fatalf("told holds %d peers, want the 50 still live", got)
	}
	for id := range q.told {
		if n, _ := strconv.Atoi(id); n%2 == 0 {
			t.Fatalf("told still holds %q, which the subscriber was told was Lost", id)
		}
	}
}
