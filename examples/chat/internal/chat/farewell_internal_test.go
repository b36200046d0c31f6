package chat

import (
	"context"
	"strings"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery"
)

// chanSource is a Subscriber whose one subscription is a channel the test
// feeds.
type chanSource chan discovery.Event

func (c chanSource) Subscribe(context.Context) (<-chan discovery.Event, error) { return c, nil }

// TestFarewellsRules drives Farewells with discovery events and
// goodbyes: a goodbye makes the member Lost for the connector, which
// then sees nothing of the listing it left with; a new listing (lost and
// found again, or another record) or a new session heard of passes again.
// A member never listed has nothing to drop.
func TestFarewellsRules(t *testing.T) {
	bob, _ := peer.Decode(relayID)
	carol, _ := peer.Decode("12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := make(chanSource)
	f := newFarewells()
	out, err := f.Subscriber(src).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listing := func(typ discovery.EventType, id peer.ID, addr string) discovery.Event {
		return discovery.Event{Type: typ, Peer: discovery.Peer{Record: discovery.Record{ID: id.String(), Addrs: []string{addr}}}}
	}
	feed := func(e discovery.Event) {
		t.Helper()
		select {
		case src <- e:
		case <-time.After(10 * time.Second):
			t.Fatal("Farewells took no event: it holds one the connector did not read, one too many passed")
		}
	}
	next := func() discovery.Event {
		t.Helper()
		select {
		case e := <-out:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event came")
		}
		return discovery.Event{}
	}
	expect := func(what string, want discovery.Event) {
		t.Helper()
		if got := next(); got.Type != want.Type || !got.Peer.Record.Equal(want.Peer.Record) {
			t.Errorf("%s: the connector got %v %v, want %v %v", what, got.Type, got.Peer.Record, want.Type, want.Peer.Record)
		}
	}
	// A marker after what should be hidden: the next event to come out
	// must be it.
	marker := listing(discovery.Found, carol, "/ip4/127.0.0.1/tcp/9")
	hidden := func(what string) {
		t.Helper()
		feed(marker)
		expect(what+" (hidden: the marker comes next)", marker)
		feed(listing(discovery.Lost, carol, "/ip4/127.0.0.1/tcp/9"))
		next()
	}

	old := listing(discovery.Found, bob, "/ip4/127.0.0.1/tcp/1")
	feed(old)
	expect("bob found", old)
	f.said(bob)
	expect("bob's goodbye", discovery.Event{Type: discovery.Lost, Peer: old.Peer})
	feed(listing(discovery.Updated, bob, "/ip4/127.0.0.1/tcp/1"))
	hidden("the listing he left with, again")

	moved := listing(discovery.Updated, bob, "/ip4/127.0.0.1/tcp/2")
	feed(moved)
	expect("a new record of his", moved)

	f.said(bob)
	expect("his second goodbye", discovery.Event{Type: discovery.Lost, Peer: moved.Peer})
	lost := listing(discovery.Lost, bob, "/ip4/127.0.0.1/tcp/2")
	feed(lost)
	expect("discovery loses him", lost)
	again := listing(discovery.Found, bob, "/ip4/127.0.0.1/tcp/2")
	feed(again)
	expect("found again, the same record", again)

	f.said(bob)
	expect("his third goodbye", discovery.Event{Type: discovery.Lost, Peer: again.Peer})
	f.back(bob)
	expect("his new session heard of", discovery.Event{Type: discovery.Found, Peer: again.Peer})
	f.back(bob) // nothing to undo
	hidden("back twice")

	f.said(carol) // never listed: nothing to drop
	hidden("a goodbye from a member never listed")

	// bob listed under another spelling of his ID (a CIDv1), which the
	// connector does not take: it is not bob's listing to drop.
	f.back(bob)
	feed(listing(discovery.Updated, bob, "/ip4/127.0.0.1/tcp/3"))
	next()
	other := listing(discovery.Found, bob, "/ip4/127.0.0.1/tcp/4")
	other.Peer.ID = peer.ToCid(bob).String()
	feed(other)
	next()
	f.said(bob)
	expect("his goodbye, after a listing under another spelling", listing(discovery.Lost, bob, "/ip4/127.0.0.1/tcp/3"))
}

// TestRoomTellsFarewells: the room tells Farewells of a goodbye, and of a
// new session of a member that said one (heard through another member);
// a line of the old session, delivered late, is no return.
func TestRoomTellsFarewells(t *testing.T) {
	bob, _ := peer.Decode(relayID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := make(chanSource, 1)
	f := newFarewells()
	out, err := f.Subscriber(src).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := discovery.Event{Type: discovery.Found, Peer: discovery.Peer{Record: discovery.Record{ID: bob.String(), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}}}
	src <- found
	next := func(what string, want discovery.EventType) {
		t.Helper()
		select {
		case e := <-out:
			if e.Type != want {
				t.Errorf("%s: the connector got %v, want %v", what, e.Type, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the connector got nothing, want %v", what, want)
		}
	}
	next("bob listed", discovery.Found)

	var shown strings.Builder
	seen, _ := lru.New[msgKey, struct{}](seenMessages)
	r := &Room{con: &Console{out: &shown}, nick: "me", seen: seen, fw: f, members: make(map[peer.ID]*member),
		mon: &Monitor{links: make(map[peer.ID]*linkState)}}
	r.handle(bob, wireMessage{Kind: kindText, Nick: "bob", Text: "bye all", Joined: 7, Seq: 1})
	r.handle(bob, wireMessage{Kind: kindBye, Nick: "bob", Joined: 7, Seq: 2})
	next("his goodbye", discovery.Lost)
	r.handle(bob, wireMessage{Kind: kindText, Nick: "bob", Text: "late", Joined: 7, Seq: 3})
	// A marker: had the late line counted as a return, its Found would
	// come first.
	carol, _ := peer.Decode("12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv")
	src <- discovery.Event{Type: discovery.Found, Peer: discovery.Peer{Record: discovery.Record{ID: carol.String(), Addrs: []string{"/ip4/127.0.0.1/tcp/2"}}}}
	select {
	case e := <-out:
		if e.Peer.ID != carol.String() {
			t.Errorf("after a late line of the session that said goodbye, the connector got %v %s", e.Type, e.Peer.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the marker never came")
	}
	r.handle(bob, wireMessage{Kind: kindText, Nick: "bob", Text: "I'm back", Joined: 9, Seq: 1})
	next("his new session", discovery.Found)
	if !strings.Contains(shown.String(), "* bob joined") || strings.Count(shown.String(), "joined") != 2 {
		t.Errorf("shown:\n%s", shown.String())
	}
}

// TestFarewellsQueueBounded: goodbyes and returns that the connector has
// not read yet leave one event per member queued, the newest.
func TestFarewellsQueueBounded(t *testing.T) {
	bob, _ := peer.Decode(relayID)
	f := newFarewells()
	sub := &farewellSub{kick: make(chan struct{}, 1)}
	f.subs[sub] = struct{}{}
	f.last[bob] = discovery.Peer{Record: discovery.Record{ID: bob.String(), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}}
	for range 1000 {
		f.said(bob)
		f.back(bob)
	}
	if len(sub.pending) != 1 || sub.pending[0].Type != discovery.Found {
		t.Errorf("queued %d events, the last %v; want one, Found", len(sub.pending), sub.pending[len(sub.pending)-1].Type)
	}
}
