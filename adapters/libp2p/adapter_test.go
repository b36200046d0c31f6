package libp2padapter_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/passphrase"
	"github.com/phrasemeet/discovery/discoverytest"
	"github.com/phrasemeet/discovery/internal/slottest"
)

// The namespaced view MemoryOpener returns is a Discoverer like any other
// and proves it with the suite.
func TestMemoryOpenerConformance(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		open := libp2padapter.MemoryOpener(discovery.NewMemory())
		ds := make([]discovery.Discoverer, n)
		for i := range ds {
			d, err := open("floodsub:conformance")
			if err != nil {
				t.Fatal(err)
			}
			ds[i] = d
		}
		return ds
	}, discoverytest.WithTimeout(5*time.Second))
}

// A Subscribe racing Close either fails or is waited for by Close: it
// never starts a goroutine Close has stopped waiting for (-race reports
// the WaitGroup misuse).
func TestMemoryOpenerSubscribeRacesClose(t *testing.T) {
	open := libp2padapter.MemoryOpener(discovery.NewMemory())
	for range 1000 {
		d, err := open("race")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if ch, err := d.Subscribe(context.Background()); err == nil {
				for range ch { // closed by Close
				}
			}
		}()
		if err := d.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-done
	}
}

// The heart of the adapter: one host advertises, another finds it with
// the addresses it listens on, and sees it go when the advertisement's
// context ends.
func TestAdvertiseThenFindPeers(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem), libp2padapter.WithFindWait(0))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))
	const ns = "chat"
	events := subscribe(t, ctx, b, ns)

	advCtx, stop := context.WithCancel(ctx)
	ttl, err := a.Advertise(advCtx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if ttl != libp2padapter.DefaultTTL {
		t.Errorf("TTL %v, want the default %v", ttl, libp2padapter.DefaultTTL)
	}
	found := awaitEvent(t, ctx, events, "A found", isEvent(discovery.Found, ha.ID()))
	if want := addrStrings(ha.Addrs()); !slices.Equal(found.Peer.Addrs, want) {
		t.Errorf("A announced %q, want its loopback addresses %q", found.Peer.Addrs, want)
	}

	ch, err := b.FindPeers(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, ctx, ch)
	if len(got) != 1 || got[0].ID != ha.ID() {
		t.Fatalf("B found %v, want only A (%s)", ids(got), ha.ID())
	}
	if !sameMultiaddrs(got[0].Addrs, ha.Addrs()) {
		t.Errorf("B found A at %v, want %v", got[0].Addrs, ha.Addrs())
	}
	// A does not find itself.
	ch, err = a.FindPeers(ctx, ns, coredisc.Limit(10))
	if err != nil {
		t.Fatal(err)
	}
	if mine := collect(t, ctx, ch); len(mine) != 0 {
		t.Errorf("A found %v in a namespace where only it advertises", ids(mine))
	}

	stop()
	awaitEvent(t, ctx, events, "A lost after its context ended", isEvent(discovery.Lost, ha.ID()))
}

// Namespaces are separate groups: a peer advertised in one is not found in
// another, even through one Memory.
func TestNamespacesStayApart(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem), libp2padapter.WithFindWait(0))
	if _, err := a.Advertise(ctx, "floodsub:one"); err != nil {
		t.Fatal(err)
	}
	// The same host in a second namespace of the same Memory: the tag keeps
	// the two announcements of one peer ID from colliding.
	if _, err := a.Advertise(ctx, "floodsub:one/two"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ctx, subscribe(t, ctx, b, "floodsub:one"), "A in one", isEvent(discovery.Found, ha.ID()))
	for _, ns := range []string{"floodsub:two", "floodsub:on", "floodsub:one/"} {
		ch, err := b.FindPeers(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if got := collect(t, ctx, ch); len(got) != 0 {
			t.Errorf("namespace %q shows %v, advertised only in others", ns, ids(got))
		}
	}
}

// A repeated Advertise announces nothing twice, and the record lives as
// long as any context it was advertised with.
func TestRepeatedAdvertiseKeepsOneRecord(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	logs := newLogChannel()
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem), libp2padapter.WithLogger(slog.New(logs)))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))
	const ns = "topic"
	events := subscribe(t, ctx, b, ns)

	first, stopFirst := context.WithCancel(ctx)
	defer stopFirst()
	for range 3 { // as pubsub and util.Advertise do: one context, many calls
		if _, err := a.Advertise(first, ns); err != nil {
			t.Fatalf("repeated Advertise: %v", err)
		}
	}
	second, stopSecond := context.WithCancel(ctx)
	defer stopSecond()
	if _, err := a.Advertise(second, ns, coredisc.TTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ctx, events, "A found", isEvent(discovery.Found, ha.ID()))

	stopFirst()
	logs.await(t, ctx, "advertisement context ended", "holders", int64(1))
	// The first context's end was handled and one holder remains: A must
	// still be announced. A new subscriber is told of every peer known.
	late := subscribe(t, ctx, b, ns)
	if e := awaitEvent(t, ctx, late, "replay", func(discovery.Event) bool { return true }); !isEvent(discovery.Found, ha.ID())(e) {
		t.Fatalf("after one of two contexts ended, B's first event is %v %s, want Found A", e.Type, e.Peer.ID)
	}

	stopSecond()
	// Between the Found above and this Lost, B saw nothing about A: the
	// repeated calls announced nothing again.
	e := awaitEvent(t, ctx, events, "A's next event", func(e discovery.Event) bool { return e.Peer.ID == ha.ID().String() })
	if e.Type != discovery.Lost {
		t.Errorf("after Found, B saw %v for A, want only Lost once its last context ended", e.Type)
	}
}

func TestAdvertiseTTL(t *testing.T) {
	ctx := testContext(t)
	h := newHost(t)
	a := newAdapter(t, h, libp2padapter.MemoryOpener(discovery.NewMemory()), libp2padapter.WithTTL(time.Hour))
	for _, c := range []struct {
		opts []coredisc.Option
		want time.Duration
	}{
		{nil, time.Hour},
		{[]coredisc.Option{coredisc.TTL(3 * time.Hour)}, 3 * time.Hour},
		{[]coredisc.Option{coredisc.TTL(time.Nanosecond)}, libp2padapter.MinTTL},
		{[]coredisc.Option{coredisc.TTL(1000 * time.Hour)}, libp2padapter.MaxTTL},
	} {
		got, err := a.Advertise(ctx, "ttl", c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("TTL with %d options: %v, want %v", len(c.opts), got, c.want)
		}
	}
	if _, err := libp2padapter.New(h, libp2padapter.MemoryOpener(discovery.NewMemory()), libp2padapter.WithTTL(time.Second)); !errors.Is(err, libp2padapter.ErrInvalidOption) {
		t.Errorf("WithTTL(1s): %v, want ErrInvalidOption", err)
	}
}

func TestFindPeersLimit(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	var want []peer.ID
	for range 3 {
		h := newHost(t)
		if _, err := newAdapter(t, h, libp2padapter.MemoryOpener(mem)).Advertise(ctx, "many"); err != nil {
			t.Fatal(err)
		}
		want = append(want, h.ID())
	}
	logs := newLogChannel()
	b := newAdapter(t, newHost(t), libp2padapter.MemoryOpener(mem), libp2padapter.WithLogger(slog.New(logs)))
	// Every advertisement above is in the Memory already; opening the
	// namespace replays all three into b's cache, which says so in its log.
	subscribe(t, ctx, b, "many")
	var wantIDs []any
	for _, id := range want {
		wantIDs = append(wantIDs, id.String())
	}
	logs.await(t, ctx, "peer cached", "peer", wantIDs...)
	ch, err := b.FindPeers(ctx, "many", coredisc.Limit(2))
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ctx, ch); len(got) != 2 {
		t.Errorf("Limit(2) gave %d peers", len(got))
	}
	ch, err = b.FindPeers(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	got := ids(collect(t, ctx, ch))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("no limit gave %v, want %v", got, want)
	}
	if _, err := b.FindPeers(ctx, "many", coredisc.Limit(-1)); !errors.Is(err, libp2padapter.ErrInvalidOption) {
		t.Errorf("Limit(-1): %v, want ErrInvalidOption", err)
	}
}

// Anyone with the passphrase can write any record. FindPeers returns only
// what libp2p can dial, never the host itself, and never panics.
func TestFindPeersSkipsHostileRecords(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	hb := newHost(t)
	open := libp2padapter.MemoryOpener(mem)
	const ns = "hostile"
	raw, err := open(ns) // a member writing records by hand
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close(context.Background()) })

	other := newPeerID(t)
	good := newPeerID(t)
	bad := []discovery.Record{
		{ID: "not a peer id", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}},
		{ID: newPeerID(t).String(), Addrs: []string{"garbage", "/ip4/999.0.0.1/tcp/1", "", strings.Repeat("/ip4/1.2.3.4", 500)}},
		{ID: newPeerID(t).String()},                                     // no address at all
		{ID: hb.ID().String(), Addrs: []string{"/ip4/127.0.0.1/tcp/9"}}, // claims to be B
		// B and the good peer again, spelt as CIDs, which peer.Decode also
		// reads: a second record for one peer ID.
		{ID: peer.ToCid(hb.ID()).String(), Addrs: []string{"/ip4/127.0.0.1/tcp/9"}},
		{ID: peer.ToCid(good).String(), Addrs: []string{"/ip4/127.0.0.1/tcp/5000"}},
		// A peer ID no host can have (a 200-byte inline "key"), long
		// enough to cost something to parse.
		{ID: longPeerID(200).String(), Addrs: []string{"/ip4/127.0.0.1/tcp/9"}},
	}
	// The last one is usable; its bad addresses are dropped, a trailing
	// /p2p/ of its own is stripped, one naming another peer dropped.
	usable := discovery.Record{ID: good.String(), Addrs: []string{
		"nonsense",
		"/ip4/127.0.0.1/tcp/4001/p2p/" + other.String(),
		"/ip4/127.0.0.1/tcp/4002/p2p/" + good.String(),
		"/ip4/127.0.0.1/tcp/4003",
		"/ip4/127.0.0.1/tcp/4003",
	}}
	for _, rec := range append(bad, usable) {
		if _, err := raw.Announce(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	logs := newLogChannel()
	b := newAdapter(t, hb, open, libp2padapter.WithLogger(slog.New(logs)))
	// The namespace opens now and is replayed every record; FindPeers
	// waits for the first usable one.
	ch, err := b.FindPeers(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ctx, ch); len(got) != 1 || got[0].ID != good {
		t.Fatalf("found %v, want only %s", ids(got), good)
	}
	// That answer may have come before the records replayed after the good
	// one were handled. Once all have been, the cache holds the good peer
	// alone, once.
	var badIDs []any
	for _, rec := range bad {
		badIDs = append(badIDs, rec.ID)
	}
	logs.await(t, ctx, "peer ignored", "id", badIDs...)
	ch, err = b.FindPeers(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, ctx, ch)
	if len(got) != 1 || got[0].ID != good {
		t.Fatalf("found %v, want only %s", ids(got), good)
	}
	want := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4002"), ma.StringCast("/ip4/127.0.0.1/tcp/4003")}
	if !sameMultiaddrs(got[0].Addrs, want) {
		t.Errorf("good peer at %v, want %v", got[0].Addrs, want)
	}
}

// A host that gains an address updates every advertisement it runs.
func TestAddressChangeUpdatesAdvertisement(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))
	for _, ns := range []string{"one", "two"} {
		if _, err := a.Advertise(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	one, two := subscribe(t, ctx, b, "one"), subscribe(t, ctx, b, "two")
	awaitEvent(t, ctx, one, "A in one", isEvent(discovery.Found, ha.ID()))
	awaitEvent(t, ctx, two, "A in two", isEvent(discovery.Found, ha.ID()))

	before := ha.Addrs()
	if err := ha.Network().Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	var added string
	for _, m := range ha.Network().ListenAddresses() {
		if !slices.ContainsFunc(before, m.Equal) {
			added = m.String()
		}
	}
	if added == "" {
		t.Fatal("no new listen address")
	}
	hasAdded := func(e discovery.Event) bool {
		return e.Type == discovery.Updated && slices.Contains(e.Peer.Addrs, added)
	}
	awaitEvent(t, ctx, one, "A updated in one", hasAdded)
	awaitEvent(t, ctx, two, "A updated in two", hasAdded)
}

// By default loopback is not published; a custom filter narrows what is.
func TestAddressFilters(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha := newHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"))
	hb := newHost(t)
	watcher := newAdapter(t, hb, libp2padapter.MemoryOpener(mem), libp2padapter.WithFindWait(0))

	// No WithLoopback: a host on loopback only has nothing to publish,
	// and Advertise says so (TestAdvertiseLoopbackOnlyFails); a peer
	// that publishes no address anyway is never returned.
	plain, err := libp2padapter.New(ha, libp2padapter.MemoryOpener(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Advertise(ctx, "default"); !errors.Is(err, libp2padapter.ErrNoAddrs) {
		t.Fatalf("loopback-only Advertise = %v, want ErrNoAddrs", err)
	}
	empty, err := libp2padapter.New(ha, libp2padapter.MemoryOpener(mem), libp2padapter.WithLoopback(),
		libp2padapter.WithAddrFilter(func(ma.Multiaddr) bool { return false }))
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	events := subscribe(t, ctx, watcher, "default")
	if _, err := empty.Advertise(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if e := awaitEvent(t, ctx, events, "A", isEvent(discovery.Found, ha.ID())); len(e.Peer.Addrs) != 0 {
		t.Errorf("a filter refusing every address published %q", e.Peer.Addrs)
	}
	ch, err := watcher.FindPeers(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ctx, ch); len(got) != 0 {
		t.Errorf("a peer without addresses was returned: %v", got)
	}

	// Loopback allowed, but only TCP.
	tcpOnly, err := libp2padapter.New(ha, libp2padapter.MemoryOpener(mem), libp2padapter.WithLoopback(),
		libp2padapter.WithAddrFilter(func(m ma.Multiaddr) bool {
			_, err := m.ValueForProtocol(ma.P_TCP)
			return err == nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer tcpOnly.Close()
	events = subscribe(t, ctx, watcher, "tcp")
	if _, err := tcpOnly.Advertise(ctx, "tcp"); err != nil {
		t.Fatal(err)
	}
	var tcp []string
	for _, s := range addrStrings(ha.Addrs()) {
		if strings.Contains(s, "/tcp/") {
			tcp = append(tcp, s)
		}
	}
	if e := awaitEvent(t, ctx, events, "A", isEvent(discovery.Found, ha.ID())); len(tcp) == 0 || !slices.Equal(e.Peer.Addrs, tcp) {
		t.Errorf("TCP-only filter published %q, want %q (host has %v)", e.Peer.Addrs, tcp, ha.Addrs())
	}
}

// A slot entry holds a few hundred bytes. A host with more addresses than
// fit is still advertised, with the addresses that fit, best ranked first:
// its direct TCP address before the WebTransport ones (another
// transport), and those in the order of their text.
func TestRecordTooLargeDropsAddresses(t *testing.T) {
	ctx := testContext(t)
	url := slottest.Relay(t)
	g := slottest.Group(t, "too many addresses here")
	// Twenty long addresses, as a host with WebTransport certificates on
	// many interfaces would have; the first is the real one.
	ha := newHost(t, libp2p.AddrsFactory(func(real []ma.Multiaddr) []ma.Multiaddr {
		out := slices.Clone(real)
		for i := range 20 {
			out = append(out, ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/udp/4001/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g", i+1)))
		}
		return out
	}))
	hb := newHost(t)
	a := newAdapter(t, ha, passphrase.SlotOpener(ha, slottest.Client(t, url), g, slottest.FastSchedule()...))
	b := newAdapter(t, hb, passphrase.SlotOpener(hb, slottest.Client(t, url), g, slottest.FastSchedule()...))
	events := subscribe(t, ctx, b, "big")
	if _, err := a.Advertise(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	e := awaitEvent(t, ctx, events, "A", isEvent(discovery.Found, ha.ID()))
	var all, wt []string
	for _, s := range addrStrings(ha.Addrs()) {
		if strings.Contains(s, "/webtransport/") {
			wt = append(wt, s)
		} else {
			all = append(all, s)
		}
	}
	slices.Sort(wt)
	all = append(all, wt...)
	if n := len(e.Peer.Addrs); n == 0 || n >= len(all) || !slices.Equal(e.Peer.Addrs, all[:n]) {
		t.Errorf("announced %d addresses %q, want a proper prefix of %d", n, e.Peer.Addrs, len(all))
	}
}

func TestCloseLeavesAndRefuses(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a, err := libp2padapter.New(ha, libp2padapter.MemoryOpener(mem), libp2padapter.WithLoopback())
	if err != nil {
		t.Fatal(err)
	}
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))
	events := subscribe(t, ctx, b, "x")
	if _, err := a.Advertise(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	// A FindPeers left waiting on an empty namespace is ended by Close.
	waiting, err := a.FindPeers(context.Background(), "empty")
	if err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ctx, events, "A found", isEvent(discovery.Found, ha.ID()))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ctx, events, "A lost at Close", isEvent(discovery.Lost, ha.ID()))
	if got := collect(t, ctx, waiting); len(got) != 0 {
		t.Errorf("a FindPeers cut short by Close returned %v", got)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := a.Advertise(ctx, "x"); !errors.Is(err, libp2padapter.ErrClosed) || !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Advertise after Close: %v, want ErrClosed", err)
	}
	if _, err := a.FindPeers(ctx, "x"); !errors.Is(err, libp2padapter.ErrClosed) {
		t.Errorf("FindPeers after Close: %v, want ErrClosed", err)
	}
}

func TestOpenerError(t *testing.T) {
	ctx := testContext(t)
	boom := errors.New("no relay configured")
	a := newAdapter(t, newHost(t), func(string) (discovery.Discoverer, error) { return nil, boom })
	_, err := a.Advertise(ctx, "somewhere")
	var oe *libp2padapter.OpenError
	if !errors.As(err, &oe) || oe.Namespace != "somewhere" || !errors.Is(err, boom) {
		t.Errorf("Advertise with a failing opener: %v, want an OpenError for the namespace wrapping the cause", err)
	}
	if _, err := a.FindPeers(ctx, "somewhere"); !errors.Is(err, boom) {
		t.Errorf("FindPeers with a failing opener: %v", err)
	}
	if _, err := libp2padapter.New(nil, libp2padapter.MemoryOpener(discovery.NewMemory())); !errors.Is(err, libp2padapter.ErrInvalidOption) {
		t.Errorf("New(nil host): %v, want ErrInvalidOption", err)
	}
}

// A FindPeers on a namespace with nobody yet returns the first peer that
// turns up, when it turns up within the wait.
func TestFindPeersWaitsForFirstPeer(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem), libp2padapter.WithFindWait(timeout))
	ch, err := b.FindPeers(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Advertise(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ctx, ch); len(got) != 1 || got[0].ID != ha.ID() {
		t.Errorf("waiting FindPeers returned %v, want A", ids(got))
	}
	// Bounded by the caller's context too: nobody comes to "never".
	short, cancel := context.WithCancel(ctx)
	ch, err = b.FindPeers(short, "never")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if got := collect(t, ctx, ch); len(got) != 0 {
		t.Errorf("FindPeers on an empty namespace returned %v", got)
	}
}

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// longPeerID returns a peer ID inlining n bytes as its "key" (an
// identity multihash), which peer.Decode accepts but no host can have
// past 42 bytes: larger keys are hashed.
func longPeerID(n int) peer.ID {
	b := binary.AppendUvarint([]byte{0x00}, uint64(n)) // the identity code, then the length
	return peer.ID(append(b, make([]byte, n)...))
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

func sameMultiaddrs(a, b []ma.Multiaddr) bool {
	return slices.Equal(addrStrings(a), addrStrings(b))
}

// logChannel is a slog handler that hands every record to the test, so a
// test can wait for the adapter to have handled something it only logs.
type logChannel struct{ ch chan slog.Record }

func newLogChannel() *logChannel { return &logChannel{ch: make(chan slog.Record, 1024)} }

func (l *logChannel) Enabled(context.Context, slog.Level) bool { return true }
func (l *logChannel) Handle(_ context.Context, r slog.Record) error {
	select {
	case l.ch <- r.Clone():
	default: // never block the code under test; a test waiting in vain times out
	}
	return nil
}
func (l *logChannel) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logChannel) WithGroup(string) slog.Handler      { return l }

// await waits until, for each of values, a record with the message msg
// and the attribute key=value has been logged, in any order.
func (l *logChannel) await(t *testing.T, ctx context.Context, msg, key string, values ...any) {
	t.Helper()
	pending := slices.Clone(values)
	for len(pending) > 0 {
		select {
		case r := <-l.ch:
			if r.Message != msg {
				continue
			}
			r.Attrs(func(a slog.Attr) bool {
				if a.Key != key {
					return true
				}
				v := a.Value.Resolve().Any()
				pending = slices.DeleteFunc(pending, func(p any) bool { return p == v })
				return false
			})
		case <-ctx.Done():
			t.Fatalf("waiting for log %q %s in %v: %v", msg, key, pending, ctx.Err())
		}
	}
}
