package mdnsdiscovery_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/discoverytest"
	"github.com/phrasemeet/discovery/internal/netnstest"
	"github.com/phrasemeet/discovery/mdnsdiscovery"
)

// fastSchedule shrinks the periods so a test runs in seconds, keeping
// the proportions the defaults have: the stale bound is over three
// re-announce periods, each long enough for zeroconf to announce a
// registration (0.75-1 s after it starts) before it is replaced.
func fastSchedule() []mdnsdiscovery.Option {
	return []mdnsdiscovery.Option{
		mdnsdiscovery.WithRepublishInterval(1500 * time.Millisecond),
		mdnsdiscovery.WithStaleAfter(5 * time.Second),
		mdnsdiscovery.WithLeaveLinger(1500 * time.Millisecond),
	}
}

// newSecret returns a fresh group secret, so each test is a group of its
// own: tests, and other programs using mDNS on this machine, never see
// each other.
func newSecret(t testing.TB) [32]byte {
	t.Helper()
	var s [32]byte
	if _, err := rand.Read(s[:]); err != nil {
		t.Fatal(err)
	}
	return s
}

// newOrSkip returns a Discoverer, or skips the test when this machine has
// no interface that can carry mDNS.
func newOrSkip(t testing.TB, secret [32]byte, opts ...mdnsdiscovery.Option) *mdnsdiscovery.Discoverer {
	t.Helper()
	netnstest.Require(t)
	d, err := mdnsdiscovery.New(secret, opts...)
	if errors.Is(err, mdnsdiscovery.ErrNoInterface) {
		t.Skipf("mDNS needs a network interface that is up and multicast-capable: %v "+
			"(in a network namespace with only loopback, `ip link set lo multicast on` provides one)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		secret := newSecret(t)
		ds := make([]discovery.Discoverer, n)
		for i := range ds {
			ds[i] = newOrSkip(t, secret, fastSchedule()...)
		}
		return ds
	}, discoverytest.WithTimeout(15*time.Second))
}

// await reads events until match accepts one, failing after timeout.
func await(t *testing.T, ch <-chan discovery.Event, timeout time.Duration, what string, match func(discovery.Event) bool) discovery.Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("the event stream closed while waiting for %s", what)
			}
			if match(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func is(typ discovery.EventType, id string) func(discovery.Event) bool {
	return func(e discovery.Event) bool { return e.Type == typ && e.Peer.ID == id }
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestGroupsDoNotMeet(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	a, b := newSecret(t), newSecret(t)
	announcer := newOrSkip(t, a, fastSchedule()...)
	defer announcer.Close(context.Background())
	sameGroup := newOrSkip(t, a, fastSchedule()...)
	defer sameGroup.Close(context.Background())
	otherGroup := newOrSkip(t, b, fastSchedule()...)
	defer otherGroup.Close(context.Background())
	if announcer.Service() == otherGroup.Service() {
		t.Fatalf("two secrets share the service name %q", announcer.Service())
	}
	if announcer.Service() != sameGroup.Service() {
		t.Fatalf("one secret gave two service names, %q and %q", announcer.Service(), sameGroup.Service())
	}
	same, err := sameGroup.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := otherGroup.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The other group announces too, so its browser is busy with a
	// service of its own while ours is on the air.
	if _, err := otherGroup.Announce(ctx, discovery.Record{ID: "stranger"}); err != nil {
		t.Fatal(err)
	}
	if _, err := announcer.Announce(ctx, discovery.Record{ID: "member", Addrs: []string{"/ip4/192.0.2.1/udp/1"}}); err != nil {
		t.Fatal(err)
	}
	// Once a member of the group has found it, the record is on the air.
	await(t, same, 15*time.Second, "Found for member in its group", is(discovery.Found, "member"))
	// Give the other group's browser a fresh session, whose query the
	// member's registration would answer if it were in that group, and
	// time to hear the answers.
	s0 := otherGroup.Stats().Sessions
	waitFor(t, 15*time.Second, "a new browse session in the other group", func() bool {
		return otherGroup.Stats().Sessions > s0
	})
	time.Sleep(time.Second)
	select {
	case e := <-other:
		t.Fatalf("the other group saw %v for %q", e.Type, e.Peer.ID)
	default:
	}
	st := otherGroup.Stats()
	if st.Own == 0 {
		t.Fatalf("the other group never heard even its own record (%+v), so its silence proves nothing", st)
	}
	if st.Rejected != 0 {
		t.Errorf("the other group received %d records it could not open; another group's should never reach it", st.Rejected)
	}
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With refreshes minutes apart and a ten-minute stale bound, every event
// within the test's timeout must come from the prompt paths: a new
// registration's announcement and the browse restart its kick causes, for
// Found and Updated; the sealed tombstone, for Lost. (The conformance
// suite's shorter periods cannot tell a prompt Lost from an aged-out one.)
func TestPromptWithoutRefreshes(t *testing.T) {
	const timeout = 30 * time.Second
	slow := []mdnsdiscovery.Option{
		mdnsdiscovery.WithRepublishInterval(3 * time.Minute),
		mdnsdiscovery.WithStaleAfter(10 * time.Minute),
		mdnsdiscovery.WithLeaveLinger(time.Second),
	}
	ctx := ctxFor(t, 5*time.Minute)
	secret := newSecret(t)
	observer := newOrSkip(t, secret, slow...)
	defer observer.Close(context.Background())
	peer := newOrSkip(t, secret, slow...)
	defer peer.Close(context.Background())
	events, err := observer.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec := discovery.Record{ID: "prompt", Addrs: []string{"/ip4/192.0.2.1/udp/1"}}

	a, err := peer.Announce(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	await(t, events, timeout, "Found", is(discovery.Found, "prompt"))
	rec.Addrs = []string{"/ip4/192.0.2.2/udp/2"}
	if err := a.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	e := await(t, events, timeout, "Updated", is(discovery.Updated, "prompt"))
	if !e.Peer.Record.Equal(rec) {
		t.Fatalf("Updated to %+v, want %+v", e.Peer.Record, rec)
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	await(t, events, timeout, "Lost after Leave", is(discovery.Lost, "prompt"))

	actx, cancel := context.WithCancel(ctx)
	if _, err := peer.Announce(actx, rec); err != nil {
		t.Fatal(err)
	}
	await(t, events, timeout, "Found after coming back", is(discovery.Found, "prompt"))
	cancel()
	await(t, events, timeout, "Lost after the announcement's context ended", is(discovery.Lost, "prompt"))

	if _, err := peer.Announce(ctx, rec); err != nil {
		t.Fatal(err)
	}
	await(t, events, timeout, "Found after coming back again", is(discovery.Found, "prompt"))
	if err := peer.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	await(t, events, timeout, "Lost after Close", is(discovery.Lost, "prompt"))
}

// An announcement whose context was cancelled has ended for its caller
// at once: its ID can be announced again right away, while its tombstone
// still lingers, and that tombstone must not take the new announcement
// down anywhere.
func TestReannounceRightAfterCancel(t *testing.T) {
	const timeout = 30 * time.Second
	ctx := ctxFor(t, 2*time.Minute)
	secret := newSecret(t)
	slow := []mdnsdiscovery.Option{
		mdnsdiscovery.WithRepublishInterval(3 * time.Minute),
		mdnsdiscovery.WithStaleAfter(10 * time.Minute),
		mdnsdiscovery.WithLeaveLinger(2 * time.Second),
	}
	observer := newOrSkip(t, secret, slow...)
	defer observer.Close(context.Background())
	peer := newOrSkip(t, secret, slow...)
	defer peer.Close(context.Background())
	events, err := observer.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	if _, err := peer.Announce(actx, discovery.Record{ID: "phoenix", Addrs: []string{"old"}}); err != nil {
		t.Fatal(err)
	}
	await(t, events, timeout, "Found", is(discovery.Found, "phoenix"))
	cancel()
	again := discovery.Record{ID: "phoenix", Addrs: []string{"new"}}
	if _, err := peer.Announce(ctx, again); err != nil {
		t.Fatalf("Announce right after the last one's context ended: %v", err)
	}
	await(t, events, timeout, "the new announcement", func(e discovery.Event) bool {
		return e.Type != discovery.Lost && e.Peer.Record.Equal(again)
	})
	// The old tombstone lingers two seconds and is answered to every
	// query meanwhile; once it is gone the peer must still be there.
	time.Sleep(4 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Type == discovery.Lost {
				t.Fatalf("the old announcement's tombstone took the new one down")
			}
			continue
		default:
		}
		break
	}
	if p := observer.Peers(); len(p) != 1 || !p[0].Record.Equal(again) {
		t.Fatalf("the observer knows %+v, want only %+v", p, again)
	}
}

func TestCloseConcurrentAndAfter(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	d := newOrSkip(t, newSecret(t), fastSchedule()...)
	a, err := d.Announce(ctx, discovery.Record{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- d.Close(context.Background()) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if err := a.Leave(ctx); err != nil {
		t.Errorf("Leave after Close: %v, want nil", err)
	}
	if err := a.Update(ctx, discovery.Record{ID: "x", Addrs: []string{"y"}}); !errors.Is(err, discovery.ErrLeft) {
		t.Errorf("Update after Close: %v, want ErrLeft", err)
	}
	if _, err := d.Announce(ctx, discovery.Record{ID: "z"}); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Announce after Close: %v, want ErrClosed", err)
	}
	if _, err := d.Subscribe(ctx); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

// A Discoverer closed at once, while its first browse is starting, stops
// every goroutine it started.
func TestCloseRightAwayLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		d := newOrSkip(t, newSecret(t), fastSchedule()...)
		if err := d.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestAnnounceRefusals(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	d := newOrSkip(t, newSecret(t), fastSchedule()...)
	defer d.Close(context.Background())
	huge := discovery.Record{ID: "huge", Meta: make([]byte, 1000)}
	_, err := d.Announce(ctx, huge)
	if !errors.Is(err, discovery.ErrInvalidRecord) || !errors.Is(err, mdnsdiscovery.ErrRecordTooLarge) {
		t.Errorf("Announce of a record too large: %v, want ErrRecordTooLarge and ErrInvalidRecord", err)
	}
	a, err := d.Announce(ctx, discovery.Record{ID: "small"})
	if err != nil {
		t.Fatal(err)
	}
	huge.ID = "small"
	if err := a.Update(ctx, huge); !errors.Is(err, mdnsdiscovery.ErrRecordTooLarge) {
		t.Errorf("Update to a record too large: %v, want ErrRecordTooLarge", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Announce(done, discovery.Record{ID: "late"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Announce with an ended context: %v, want context.Canceled", err)
	}
}

// Bad settings fail New before it touches the network.
func TestNewRefusesBadSettings(t *testing.T) {
	secret := newSecret(t)
	for name, opts := range map[string][]mdnsdiscovery.Option{
		"empty name":                {mdnsdiscovery.WithName("")},
		"nil logger":                {mdnsdiscovery.WithLogger(nil)},
		"nil clock":                 {mdnsdiscovery.WithClock(nil)},
		"no interfaces named":       {mdnsdiscovery.WithInterfaces()},
		"empty interface name":      {mdnsdiscovery.WithInterfaces("")},
		"re-announce under 1 s":     {mdnsdiscovery.WithRepublishInterval(500 * time.Millisecond)},
		"stale bound zero":          {mdnsdiscovery.WithStaleAfter(0)},
		"stale under two refreshes": {mdnsdiscovery.WithRepublishInterval(10 * time.Second), mdnsdiscovery.WithStaleAfter(15 * time.Second)},
		"negative skew":             {mdnsdiscovery.WithMaxClockSkew(-time.Second)},
		"negative linger":           {mdnsdiscovery.WithLeaveLinger(-time.Second)},
	} {
		if d, err := mdnsdiscovery.New(secret, opts...); err == nil || errors.Is(err, mdnsdiscovery.ErrNoInterface) {
			if d != nil {
				d.Close(context.Background())
			}
			t.Errorf("%s: New returned %v, want a settings error", name, err)
		}
	}
	if _, err := mdnsdiscovery.New([32]byte{}); err == nil {
		t.Error("New accepted an all-zero secret")
	}
}

// An interface that does not exist leaves nothing to use.
func TestNoSuchInterface(t *testing.T) {
	_, err := mdnsdiscovery.New(newSecret(t), mdnsdiscovery.WithInterfaces("no-such-if0"))
	if !errors.Is(err, mdnsdiscovery.ErrNoInterface) {
		t.Fatalf("New on a missing interface: %v, want ErrNoInterface", err)
	}
}

func ExampleNew() {
	// A program derives the secret from the passphrase through the slot
	// rendezvous's KDF:
	//
	//	group, err := slotdiscovery.DeriveGroup(passphrase)
	//	...
	//	secret := group.DeriveKey("mdnsdiscovery")
	var secret [32]byte
	copy(secret[:], "example secret, never a constant")

	d, err := mdnsdiscovery.New(secret, mdnsdiscovery.WithName("lan"))
	if errors.Is(err, mdnsdiscovery.ErrNoInterface) {
		fmt.Println("no network to meet on:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(context.Background()) // leaves, so the others see this peer Lost at once

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := d.Subscribe(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The announcement keeps itself alive until ctx ends or Close.
	if _, err := d.Announce(ctx, discovery.Record{
		ID:    "12D3KooWExamplePeer",
		Addrs: []string{"/ip4/192.0.2.7/udp/4001/quic-v1"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	for e := range events {
		fmt.Println(e.Type, e.Peer.ID, e.Peer.Addrs)
	}
}
