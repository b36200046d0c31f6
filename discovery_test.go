package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/discoverytest"
)

func TestMemoryConformance(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		space := discovery.NewMemory()
		ds := make([]discovery.Discoverer, n)
		for i := range ds {
			ds[i] = space.Join(fmt.Sprintf("memory-%d", i))
		}
		return ds
	})
}

// TestCombineConformance runs the suite on peers that each combine two
// memory spaces: the combination must behave as one discoverer.
func TestCombineConformance(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		lan, wan := discovery.NewMemory(), discovery.NewMemory()
		ds := make([]discovery.Discoverer, n)
		for i := range ds {
			ds[i] = discovery.Combine(lan.Join("lan"), wan.Join("wan"))
		}
		return ds
	})
}

// failing is a Discoverer whose every call fails, standing in for a
// mechanism that is down (no multicast interface, no relay).
type failing struct{ closed bool }

var errDown = errors.New("mechanism down")

func (f *failing) Name() string { return "down" }
func (f *failing) Announce(context.Context, discovery.Record) (discovery.Announcement, error) {
	return nil, errDown
}
func (f *failing) Subscribe(context.Context) (<-chan discovery.Event, error) { return nil, errDown }
func (f *failing) Close(context.Context) error                               { f.closed = true; return nil }

// slow is a member that has not noticed yet that an announcement's
// context ended: its announcements accept every Update.
type slow struct{}

func (slow) Name() string { return "slow" }
func (slow) Announce(_ context.Context, rec discovery.Record) (discovery.Announcement, error) {
	return slowAnnouncement{rec}, nil
}
func (slow) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	ch := make(chan discovery.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}
func (slow) Close(context.Context) error { return nil }

type slowAnnouncement struct{ rec discovery.Record }

func (a slowAnnouncement) Record() discovery.Record                     { return a.rec }
func (slowAnnouncement) Update(context.Context, discovery.Record) error { return nil }
func (slowAnnouncement) Leave(context.Context) error                    { return nil }

// TestCombineUpdateAfterCancel: once an announcement's context has ended,
// Update says ErrLeft at once, whether or not every member has noticed
// (the conformance suite's cancellation check failed 1 run in 30 when a
// member noticed late).
func TestCombineUpdateAfterCancel(t *testing.T) {
	c := discovery.Combine(slow{})
	defer c.Close(context.Background())
	actx, cancel := context.WithCancel(testContext(t))
	a, err := c.Announce(actx, discovery.Record{ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(testContext(t), discovery.Record{ID: "a", Addrs: []string{"/ip4/192.0.2.1/udp/1"}}); err != nil {
		t.Fatalf("Update before the end: %v", err)
	}
	cancel()
	if err := a.Update(testContext(t), discovery.Record{ID: "a"}); !errors.Is(err, discovery.ErrLeft) {
		t.Errorf("Update after the announcement's context ended: %v, want ErrLeft", err)
	}
}

// TestCombineOneMemberDown: a member that cannot announce or subscribe
// does not stop the others, and Announce fails only when all fail.
func TestCombineOneMemberDown(t *testing.T) {
	ctx := testContext(t)
	space := discovery.NewMemory()
	down := &failing{}
	a := discovery.Combine(down, space.Join("wan"))
	b := space.Join("wan")
	defer b.Close(context.Background())
	sub, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Announce(ctx, discovery.Record{ID: "a"}); err != nil {
		t.Fatalf("Announce with one member down: %v", err)
	}
	waitFor(t, sub, discovery.Found, "a")
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !down.closed {
		t.Error("Combine's Close did not close its members")
	}
	all := discovery.Combine(&failing{}, &failing{})
	defer all.Close(context.Background())
	if _, err := all.Announce(ctx, discovery.Record{ID: "x"}); !errors.Is(err, errDown) {
		t.Fatalf("Announce with every member down: %v, want the members' errors", err)
	}
}

// TestCombineDeduplicates: a peer found through two members is one peer,
// Found once with both sources, Updated when the second member finds it,
// and Lost only when the last member loses it.
func TestCombineDeduplicates(t *testing.T) {
	ctx := testContext(t)
	lan, wan := discovery.NewMemory(), discovery.NewMemory()
	observer := discovery.Combine(lan.Join("lan"), wan.Join("wan"))
	defer observer.Close(context.Background())
	sub, err := observer.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	onLAN, onWAN := lan.Join("lan"), wan.Join("wan")
	defer onLAN.Close(context.Background())
	defer onWAN.Close(context.Background())

	rec := discovery.Record{ID: "peer", Addrs: []string{"/ip4/192.0.2.1/udp/1"}}
	lanAnn, err := onLAN.Announce(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	e := waitFor(t, sub, discovery.Found, "peer")
	if !slices.Equal(e.Peer.Sources, []string{"lan"}) {
		t.Fatalf("sources after the LAN found it: %v", e.Peer.Sources)
	}
	wanAnn, err := onWAN.Announce(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	e = next(t, sub)
	if e.Type != discovery.Updated || !slices.Equal(e.Peer.Sources, []string{"lan", "wan"}) {
		t.Fatalf("after the WAN found it too: %v %v, want updated with sources [lan wan]", e.Type, e.Peer.Sources)
	}
	if err := lanAnn.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	e = next(t, sub)
	if e.Type != discovery.Updated || !slices.Equal(e.Peer.Sources, []string{"wan"}) {
		t.Fatalf("after the LAN lost it: %v %v, want updated with sources [wan]", e.Type, e.Peer.Sources)
	}
	if err := wanAnn.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sub, discovery.Lost, "peer")
}

// TestTrackerSlowSubscriber: a subscriber that does not read holds up
// neither the tracker nor other subscribers, and later receives every
// peer, in the order they were found.
func TestTrackerSlowSubscriber(t *testing.T) {
	ctx := testContext(t)
	tr := discovery.NewTracker(nil)
	defer tr.Close()
	slow, err := tr.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := tr.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		tr.Upsert(discovery.Peer{Record: discovery.Record{ID: fmt.Sprint(i)}, Sources: []string{"t"}})
	}
	for i := range n {
		if e := next(t, fast); e.Peer.ID != fmt.Sprint(i) || e.Type != discovery.Found {
			t.Fatalf("fast subscriber event %d: %v %q", i, e.Type, e.Peer.ID)
		}
	}
	for i := range n {
		if e := next(t, slow); e.Peer.ID != fmt.Sprint(i) {
			t.Fatalf("slow subscriber event %d: %q", i, e.Peer.ID)
		}
	}
	if got := tr.Upsert(discovery.Peer{Record: discovery.Record{ID: "0"}, Sources: []string{"t"}, Seen: time.Now()}); got != 0 {
		t.Fatalf("an Upsert that changes only Seen emitted %v", got)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func next(t *testing.T, ch <-chan discovery.Event) discovery.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("event stream closed")
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	panic("unreachable")
}

func waitFor(t *testing.T, ch <-chan discovery.Event, typ discovery.EventType, id string) discovery.Event {
	t.Helper()
	for {
		if e := next(t, ch); e.Type == typ && e.Peer.ID == id {
			return e
		}
	}
}

// Two peers in one in-memory space find each other; when one leaves, the
// other is told.
func ExampleMemory() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	space := discovery.NewMemory()
	alice, bob := space.Join("memory"), space.Join("memory")
	defer alice.Close(context.Background())
	defer bob.Close(context.Background())

	events, err := bob.Subscribe(ctx)
	if err != nil {
		panic(err)
	}
	a, err := alice.Announce(ctx, discovery.Record{ID: "alice", Addrs: []string{"/ip4/192.0.2.1/udp/4001/quic-v1"}})
	if err != nil {
		panic(err)
	}
	e := <-events
	fmt.Println(e.Type, e.Peer.ID, e.Peer.Addrs, e.Peer.Sources)

	a.Leave(ctx)
	e = <-events
	fmt.Println(e.Type, e.Peer.ID)
	// Output:
	// found alice [/ip4/192.0.2.1/udp/4001/quic-v1] [memory]
	// lost alice
}
