package discovery_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/phrasemeet/discovery"
)

// view applies a subscriber's events to what it knows, failing the test on
// an event that breaks the stream's meaning: Updated or Lost for a peer the
// subscriber was not told was Found, Found for one it already knows, an
// Updated that changes nothing it was told.
type view map[string]discovery.Peer

func (v view) apply(t *testing.T, e discovery.Event) {
	t.Helper()
	old, known := v[e.Peer.ID]
	switch e.Type {
	case discovery.Found:
		if known {
			t.Fatalf("Found for %q, which the subscriber already knows", e.Peer.ID)
		}
		v[e.Peer.ID] = e.Peer
	case discovery.Updated:
		if !known {
			t.Fatalf("Updated for %q, which the subscriber was never told was Found", e.Peer.ID)
		}
		if old.Record.Equal(e.Peer.Record) && slices.Equal(old.Sources, e.Peer.Sources) {
			t.Fatalf("Updated for %q changes nothing the subscriber knows", e.Peer.ID)
		}
		v[e.Peer.ID] = e.Peer
	case discovery.Lost:
		if !known {
			t.Fatalf("Lost for %q, which the subscriber was never told was Found", e.Peer.ID)
		}
		delete(v, e.Peer.ID)
	default:
		t.Fatalf("event of unknown type %v", e.Type)
	}
}

// same reports whether the view holds exactly the tracker's peers.
func (v view) same(peers []discovery.Peer) bool {
	if len(v) != len(peers) {
		return false
	}
	for _, p := range peers {
		q, ok := v[p.ID]
		if !ok || !q.Record.Equal(p.Record) || !slices.Equal(q.Sources, p.Sources) {
			return false
		}
	}
	return true
}

// TestTrackerSlowSubscriberBounded: a subscriber that does not read while
// 10 peers change 100,000 times (addresses, leaves and returns) holds
// O(10) queued events, not 100,000; when it reads, it sees a consistent
// stream that ends in the tracker's view. Once for a subscriber that knew
// none of the peers when it stopped reading, once for one that knew all.
func TestTrackerSlowSubscriberBounded(t *testing.T) {
	for _, knew := range []bool{false, true} {
		t.Run(fmt.Sprintf("knew=%v", knew), func(t *testing.T) { slowSubscriberBounded(t, knew) })
	}
}

func slowSubscriberBounded(t *testing.T, knew bool) {
	ctx := testContext(t)
	tr := discovery.NewTracker(nil)
	defer tr.Close()
	const peers, updates = 10, 100_000
	peer := func(i, v int) discovery.Peer {
		return discovery.Peer{
			Record:  discovery.Record{ID: fmt.Sprintf("peer-%d", i), Addrs: []string{fmt.Sprintf("/ip4/192.0.2.%d/udp/%d", i+1, v)}},
			Sources: []string{"t"},
		}
	}
	v := make(view)
	if knew {
		for i := range peers {
			tr.Upsert(peer(i, 0))
		}
	}
	slow, err := tr.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if knew {
		for range peers {
			v.apply(t, next(t, slow))
		}
	}
	for u := range updates {
		i := u % peers
		switch {
		case u%997 == 996:
			// Now and then a peer leaves (a different one each time), and
			// comes back at its next turn.
			tr.Remove(peer(i, u).ID)
		default:
			tr.Upsert(peer(i, u))
		}
	}
	// A peer that comes and goes unseen by the slow subscriber.
	tr.Upsert(discovery.Peer{Record: discovery.Record{ID: "transient"}, Sources: []string{"t"}})
	tr.Remove("transient")
	queued := discovery.QueuedEvents(tr)
	if len(queued) != 1 {
		t.Fatalf("%d subscribers, want 1", len(queued))
	}
	// At most a Lost and a Found per peer.
	if queued[0] > 2*peers {
		t.Fatalf("a subscriber that does not read holds %d queued events after %d changes to %d peers, want at most %d", queued[0], updates, peers, 2*peers)
	}
	t.Logf("queued after %d changes to %d peers: %d events", updates, peers, queued[0])

	// A last peer, so the reader knows when it has drained the queue: a
	// new peer queues behind every peer already pending.
	tr.Upsert(discovery.Peer{Record: discovery.Record{ID: "zz-end"}, Sources: []string{"t"}})
	n := 0
	for {
		e := next(t, slow)
		n++
		v.apply(t, e)
		if e.Peer.ID == "transient" {
			t.Fatalf("the subscriber was told about a peer that came and went while it did not read: %v", e.Type)
		}
		if e.Peer.ID == "zz-end" {
			break
		}
	}
	if want := tr.Peers(); !v.same(want) {
		t.Fatalf("after %d events the subscriber's view is %v, want the tracker's %v", n, slices.Sorted(maps.Keys(v)), want)
	}
	t.Logf("the subscriber read %d events", n)
}
