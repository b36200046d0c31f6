package connectivity_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
)

// loopbackTCPQUIC listens on loopback only, TCP and QUIC.
var loopbackTCPQUIC = connectivity.WithListenAddrs(
	ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"))

// connHost starts a host with the options of a new Connectivity (loopback
// listen addresses first, so opts may replace them) and closes it when
// the test ends.
func connHost(t *testing.T, opts ...connectivity.Option) (host.Host, *connectivity.Manager) {
	t.Helper()
	c, err := connectivity.New(append([]connectivity.Option{loopbackTCPQUIC}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(c.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, c
}

// member gives h an adapter over mem, advertised in namespace "group"
// until the test ends, and returns it.
func member(t *testing.T, ctx context.Context, h host.Host, mem *discovery.Memory) *libp2padapter.Adapter {
	t.Helper()
	a := newAdapter(t, h, libp2padapter.MemoryOpener(mem))
	if _, err := a.Advertise(ctx, "group"); err != nil {
		t.Fatal(err)
	}
	return a
}

// clientHost is a plain host on loopback TCP that can dial through
// circuit relays.
func clientHost(t *testing.T) host.Host {
	t.Helper()
	return newHost(t, libp2p.EnableRelay())
}

// circuitTo is the address of peer p through relay r's first address.
func circuitTo(r host.Host, p peer.ID) ma.Multiaddr {
	return r.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + r.ID().String() + "/p2p-circuit/p2p/" + p.String()))
}

// dialThrough dials p through relay r from h until it works (p's
// reservation may not exist yet) or ctx ends, clearing h's dial backoff
// between tries.
func dialThrough(t *testing.T, ctx context.Context, h, r host.Host, p peer.ID) error {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		try, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = h.Connect(try, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{circuitTo(r, p)}})
		cancel()
		if err == nil {
			return nil
		}
		if sw, ok := h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(p)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// The group relay admits members only. A peer the rendezvous has not found
// gets no reservation and opens no circuit, whoever it dials; a member
// gets both. A peer that asks while the rendezvous is about to find it is
// admitted once found, within the grace.
func TestGroupRelayACL(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	r, rc := connHost(t, connectivity.WithReachability(connectivity.ReachabilityPublic), connectivity.WithRelayACLWait(0))
	rc.Attach(member(t, ctx, r, mem))
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	rinfo := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}

	m1, m2, stranger := clientHost(t), clientHost(t), clientHost(t)
	member(t, ctx, m1, mem)
	member(t, ctx, m2, mem)
	for _, h := range []host.Host{m1, m2, stranger} {
		if err := h.Connect(ctx, rinfo); err != nil {
			t.Fatal(err)
		}
	}
	// The relay's adapter finds both members.
	waitFor(t, ctx, "the relay finding the members", func() bool { return rc.AllowReserve(m1.ID(), nil) && rc.AllowReserve(m2.ID(), nil) })

	_, err := client.Reserve(ctx, stranger, rinfo)
	var rerr client.ReservationError
	if !errors.As(err, &rerr) || rerr.Status != pbv2.Status_PERMISSION_DENIED {
		t.Fatalf("a stranger's reservation: %v, want PERMISSION_DENIED", err)
	}
	for _, h := range []host.Host{m1, m2} {
		if _, err := client.Reserve(ctx, h, rinfo); err != nil {
			t.Fatalf("a member's reservation: %v", err)
		}
	}
	// Circuits: member to member only.
	relayed := func(from host.Host, to peer.ID) error {
		try, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return from.Connect(network.WithAllowLimitedConn(try, "test"), peer.AddrInfo{ID: to, Addrs: []ma.Multiaddr{circuitTo(r, to)}})
	}
	if err := relayed(stranger, m2.ID()); err == nil || !strings.Contains(err.Error(), "PERMISSION_DENIED") {
		t.Errorf("a stranger's circuit to a member: %v, want PERMISSION_DENIED", err)
	}
	if err := relayed(m1, m2.ID()); err != nil {
		t.Fatalf("a member's circuit to a member: %v", err)
	}
	if got := connectivity.LinkTo(m1.Network(), m2.ID()); got != connectivity.LinkRelayed {
		t.Errorf("link through the group relay: %v, want relayed", got)
	}
	// The group relay sets no limit: the connection is not limited, so
	// streams (gossipsub's) open on it without WithAllowLimitedConn.
	for _, c := range m1.Network().ConnsToPeer(m2.ID()) {
		if c.Stat().Limited {
			t.Errorf("relayed connection %s is limited", c.RemoteMultiaddr())
		}
	}
}

// With a grace, a peer asking before the rendezvous has found it is
// admitted as soon as it is found.
func TestGroupRelayACLGrace(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	r, rc := connHost(t, connectivity.WithReachability(connectivity.ReachabilityPublic), connectivity.WithRelayACLWait(timeout))
	rc.Attach(member(t, ctx, r, mem))
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	late := clientHost(t)
	rinfo := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}
	if err := late.Connect(ctx, rinfo); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := client.Reserve(ctx, late, rinfo)
		done <- err
	}()
	// Not a member yet: the reservation waits.
	select {
	case err := <-done:
		t.Fatalf("reservation answered before the peer was found: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	member(t, ctx, late, mem)
	if err := <-done; err != nil {
		t.Fatalf("reservation once found: %v", err)
	}
}

// A host whose addresses are all private (here: loopback) knows at once
// that it is private: it does not wait for AutoNAT, which would first ask
// after 15 s, and only peers that answer AutoNAT (there are none here).
// A forced reachability stands.
func TestReachabilityPrivateAtOnce(t *testing.T) {
	ctx := testContext(t)
	for _, c := range []struct {
		mode connectivity.Reachability
		want network.Reachability
	}{
		{connectivity.ReachabilityAuto, network.ReachabilityPrivate},
		{connectivity.ReachabilityPrivate, network.ReachabilityPrivate},
		{connectivity.ReachabilityPublic, network.ReachabilityPublic},
	} {
		h, conn := connHost(t, connectivity.WithReachability(c.mode))
		sub, err := h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-sub.Out():
			if got := e.(event.EvtLocalReachabilityChanged).Reachability; got != c.want {
				t.Errorf("%s: reachability %v, want %v", c.mode, got, c.want)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no reachability within %v", c.mode, timeout)
		}
		sub.Close()
		waitFor(t, ctx, "Connectivity's reachability", func() bool { return conn.CurrentReachability() == c.want })
	}
}

// A member behind NAT (forced private here) gets a reservation on a
// public member's group relay through AutoRelay, fed from the members the
// rendezvous found: another member then reaches it through the relay.
// AutoRelay's own defaults (four candidates or three minutes, the peer
// source asked every 30 s) would not make it within the test's timeout.
func TestPrivateMemberReservesOnGroupRelay(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	r, rc := connHost(t, connectivity.WithReachability(connectivity.ReachabilityPublic))
	rc.Attach(member(t, ctx, r, mem))
	p, pc := connHost(t, connectivity.WithReachability(connectivity.ReachabilityPrivate), connectivity.WithGroupRelay(false))
	pc.Attach(member(t, ctx, p, mem))
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	// The members meet as their Connectors would make them.
	if err := p.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatal(err)
	}
	q := clientHost(t)
	member(t, ctx, q, mem)
	if err := q.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := dialThrough(t, ctx, q, r, p.ID()); err != nil {
		t.Fatalf("no member reaches the private member through the group relay: %v", err)
	}
	if got := connectivity.LinkTo(q.Network(), p.ID()); got != connectivity.LinkRelayed {
		t.Errorf("link: %v, want relayed", got)
	}
}

// A static circuit relay (not a member) is offered to AutoRelay too.
func TestStaticCircuitRelay(t *testing.T) {
	ctx := testContext(t)
	// A plain relay, as `phrasemeet relay --circuit-listen` runs one.
	r := newHost(t, libp2p.EnableRelayService(relay.WithInfiniteLimits()), libp2p.ForceReachabilityPublic())
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	p, _ := connHost(t, connectivity.WithReachability(connectivity.ReachabilityPrivate),
		connectivity.WithCircuitRelays(peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}))
	q := clientHost(t)
	if err := q.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := dialThrough(t, ctx, q, r, p.ID()); err != nil {
		t.Fatalf("nobody reaches the private host through its static relay: %v", err)
	}
}

// The options of one Connectivity build one host.
func TestConnectivityServesOneHost(t *testing.T) {
	_, c := connHost(t)
	h, err := libp2p.New(c.Options()...)
	if err == nil {
		h.Close()
	}
	if !errors.Is(err, connectivity.ErrInUse) {
		t.Fatalf("a second host from one Connectivity: %v, want ErrConnectivityInUse", err)
	}
}

func TestConnectivityOptionsRefused(t *testing.T) {
	id, err := peer.Decode("12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv")
	if err != nil {
		t.Fatal(err)
	}
	good := ma.StringCast("/ip4/198.51.100.1/tcp/4001")
	bad := map[string]connectivity.Option{
		"relay without ID":        connectivity.WithCircuitRelays(peer.AddrInfo{Addrs: []ma.Multiaddr{good}}),
		"relay without address":   connectivity.WithCircuitRelays(peer.AddrInfo{ID: id}),
		"relay through a relay":   connectivity.WithCircuitRelays(peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/198.51.100.1/tcp/1/p2p/" + id.String() + "/p2p-circuit")}}),
		"reachability":            connectivity.WithReachability("sometimes"),
		"invalid CIDR":            connectivity.WithPublicCIDRs(netip.Prefix{}),
		"private IPv6 CIDR":       connectivity.WithPublicCIDRs(netip.MustParsePrefix("fd00::/8")),
		"no listen address":       connectivity.WithListenAddrs(),
		"retry under a second":    connectivity.WithRelayRetryDelay(time.Millisecond),
		"negative grace":          connectivity.WithRelayACLWait(-time.Second),
		"nil clock":               connectivity.WithClock(nil),
		"nil logger":              connectivity.WithLogger(nil),
		"zero relay resources":    connectivity.WithGroupRelayResources(relay.Resources{}),
		"zero per-circuit limits": connectivity.WithGroupRelayResources(func() relay.Resources { r := relay.DefaultResources(); r.Limit.Data = 0; return r }()),
	}
	for name, o := range bad {
		if _, err := connectivity.New(o); !errors.Is(err, connectivity.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := connectivity.New(connectivity.WithGroupRelayResources(relay.DefaultResources()), nil); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
}

func TestParseCircuitRelays(t *testing.T) {
	id := "12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv"
	got, err := connectivity.ParseCircuitRelays([]string{
		"/ip4/198.51.100.1/tcp/4001/p2p/" + id,
		"/ip4/198.51.100.1/udp/4001/quic-v1/p2p/" + id,
		"/ip4/198.51.100.1/tcp/4001/p2p/" + id, // a repeat
	})
	if err != nil || len(got) != 1 || got[0].ID.String() != id || len(got[0].Addrs) != 2 {
		t.Fatalf("ParseCircuitRelays = %v, %v; want one relay with two addresses", got, err)
	}
	for _, s := range []string{
		"",
		"/ip4/198.51.100.1/tcp/4001",
		"/p2p/" + id,
		"/ip4/198.51.100.1/tcp/4001/p2p/" + id + "/p2p-circuit",
		"/ip4/198.51.100.1/tcp/4001/p2p/notanid",
		"198.51.100.1:4001",
		"/ip4/198.51.100.1/tcp/4001/p2p/" + id + strings.Repeat("/tcp/1", 300),
	} {
		if got, err := connectivity.ParseCircuitRelays([]string{s}); !errors.Is(err, connectivity.ErrInvalidOption) {
			t.Errorf("ParseCircuitRelays(%.60q) = %v, %v; want ErrInvalidOption", s, got, err)
		}
	}
}

func TestParseReachability(t *testing.T) {
	for _, s := range []string{"auto", "private", "public"} {
		if r, err := connectivity.ParseReachability(s); err != nil || string(r) != s {
			t.Errorf("ParseReachability(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Auto", "nat", "public "} {
		if _, err := connectivity.ParseReachability(s); !errors.Is(err, connectivity.ErrInvalidOption) {
			t.Errorf("ParseReachability(%q): %v, want ErrInvalidOption", s, err)
		}
	}
}

func FuzzParseCircuitRelays(f *testing.F) {
	id := "12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv"
	f.Add("/ip4/198.51.100.1/tcp/4001/p2p/"+id, "/ip6/::1/udp/1/quic-v1/p2p/"+id)
	f.Add("/dns4/relay.example.com/tcp/443/wss/p2p/"+id, "/p2p/"+id)
	f.Add("/ip4/1.2.3.4/tcp/1/p2p/"+id+"/p2p-circuit", "garbage")
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := connectivity.ParseCircuitRelays([]string{a, b})
		if err != nil {
			if !errors.Is(err, connectivity.ErrInvalidOption) {
				t.Fatalf("error %v is not ErrInvalidOption", err)
			}
			return
		}
		if len(got) == 0 || len(got) > 2 {
			t.Fatalf("%d relays from 2 addresses", len(got))
		}
		// What is accepted is accepted by CircuitRelays too.
		if _, err := connectivity.New(connectivity.WithCircuitRelays(got...)); err != nil {
			t.Fatalf("CircuitRelays refuses what ParseCircuitRelays accepted (%v): %v", got, err)
		}
	})
}

// inChild runs the calling test in a process of its own, for tests that
// change process-wide state (TreatAsPublic). In the parent it runs the
// child, reports its output on failure and returns false; in the child it
// returns true and the test goes on.
func inChild(t *testing.T) bool {
	t.Helper()
	const env = "LIBP2PADAPTER_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		return true
	}
	ctx := testContext(t)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*timeout) // the child has its own timeouts
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(out), "--- SKIP: "+t.Name()) {
		t.Skipf("skipped in the child process:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	return false
}

// TreatAsPublic makes a documentation range count as public to
// go-multiaddr, leaves the rest of a partly covered range private, is
// idempotent (a second call writes nothing), safe to call concurrently,
// and refuses an IPv6 range go-multiaddr never calls public.
func TestTreatAsPublic(t *testing.T) {
	if !inChild(t) {
		return
	}
	public := func(s string) bool { return manet.IsPublicAddr(ma.StringCast(s)) }
	// Identifies the lists' current backing arrays.
	lists := func() string {
		return fmt.Sprintf("%p %p %p %p", &manet.Private4[0], &manet.Private6[0], &manet.Unroutable4[0], &manet.Unroutable6[0])
	}
	if public("/ip4/198.51.100.7/tcp/1") || public("/ip4/10.1.2.3/tcp/1") {
		t.Fatal("documentation or private range public before TreatAsPublic: the test tests nothing")
	}
	done := make(chan error, 4)
	for range 4 {
		go func() {
			done <- connectivity.TreatAsPublic(netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("10.1.0.0/16"))
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for s, want := range map[string]bool{
		"/ip4/198.51.100.7/tcp/1":     true,
		"/ip4/198.51.100.255/tcp/1":   true,
		"/ip4/203.0.113.7/tcp/1":      false,
		"/ip4/10.1.2.3/udp/1/quic-v1": true,
		"/ip4/10.2.0.1/tcp/1":         false,
		"/ip4/10.0.255.255/tcp/1":     false,
		"/ip4/127.0.0.1/tcp/1":        false,
	} {
		if got := public(s); got != want {
			t.Errorf("%s public: %v, want %v", s, got, want)
		}
	}
	before := lists()
	if err := connectivity.TreatAsPublic(netip.MustParsePrefix("198.51.100.0/25")); err != nil {
		t.Fatal(err)
	}
	if after := lists(); after != before {
		t.Errorf("a range already public changed go-multiaddr's lists")
	}
	if err := connectivity.TreatAsPublic(netip.MustParsePrefix("fd00::/8")); !errors.Is(err, connectivity.ErrInvalidOption) {
		t.Errorf("a ULA range: %v, want ErrInvalidOption", err)
	}
	if err := connectivity.TreatAsPublic(netip.MustParsePrefix("2001:db8::/32")); err != nil || !public("/ip6/2001:db8::1/tcp/1") {
		t.Errorf("IPv6 documentation range: %v", err)
	}
}

// A member behind NAT publishes its circuit address once it holds a
// reservation, after its direct ones. Here 127.0.0.1 plays the public
// internet (TreatAsPublic, in a process of its own) and 127.0.0.2 the
// member's home network: in auto mode the member, having no public
// address, takes itself to be private at once, reserves a slot on the
// public member's group relay and re-announces its record with the
// circuit address.
func TestPrivateMemberPublishesCircuitAddress(t *testing.T) {
	if !inChild(t) {
		return
	}
	ctx, mem, r := publicGroupRelay(t)
	p, pc := connHost(t, connectivity.WithGroupRelay(false), connectivity.WithListenAddrs(
		ma.StringCast("/ip4/127.0.0.2/tcp/0"), ma.StringCast("/ip4/127.0.0.2/udp/0/quic-v1")))
	observer := newHost(t)
	events := subscribe(t, ctx, newAdapter(t, observer, libp2padapter.MemoryOpener(mem)), "group")
	pc.Attach(member(t, ctx, p, mem))
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	if err := p.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatal(err)
	}
	e := awaitEvent(t, ctx, events, "P's record with a circuit address", func(e discovery.Event) bool {
		return e.Peer.ID == p.ID().String() && slices.ContainsFunc(e.Peer.Addrs, func(s string) bool { return strings.Contains(s, "/p2p-circuit") })
	})
	if got := pc.CurrentReachability(); got != network.ReachabilityPrivate {
		t.Errorf("P's reachability: %v, want private", got)
	}
	seenCircuit := false
	for _, s := range e.Peer.Addrs {
		circuit := strings.Contains(s, "/p2p-circuit")
		if seenCircuit && !circuit {
			t.Errorf("direct address %s after a circuit address in %q", s, e.Peer.Addrs)
		}
		if circuit && !strings.Contains(s, "/p2p/"+r.ID().String()+"/p2p-circuit") {
			t.Errorf("circuit address %s is not through the group relay", s)
		}
		seenCircuit = seenCircuit || circuit
	}
}

// Two members connected through the group relay hole punch to a direct
// connection, and the Connectivity reports it (OnHolePunch,
// LastHolePunch). 127.0.0.1 plays the public internet (TreatAsPublic,
// in a process of its own); B refuses every inbound connection, as a
// host behind NAT does, so A cannot simply dial it back, and the two
// punch: B's own dial to A makes the direct connection. Real NATs are
// for the namespace lab; this checks the wiring.
func TestHolePunchReported(t *testing.T) {
	if !inChild(t) {
		return
	}
	ctx, mem, r := publicGroupRelay(t)
	private := []connectivity.Option{connectivity.WithReachability(connectivity.ReachabilityPrivate), connectivity.WithGroupRelay(false)}
	a, ac := connHost(t, private...)
	ac.Attach(member(t, ctx, a, mem))
	// TCP only: go-libp2p gates an inbound TCP connection before its
	// handshake, a QUIC one only after (the dialer would see it succeed).
	traced := new(typeTracer)
	b, bc := refusingHost(t, append(private, connectivity.WithHolePunchTracer(traced))...)
	// B is a member to the relay, but its own Connectivity is left
	// unattached: it would offer A to AutoRelay as a possible relay
	// (A has a public address), and AutoRelay's check would connect B
	// to A directly, which on loopback works.
	member(t, ctx, b, mem)
	punched := make(chan connectivity.HolePunchEvent, 4)
	for _, c := range []*connectivity.Manager{ac, bc} {
		stop := c.OnHolePunch(func(e connectivity.HolePunchEvent) { punched <- e })
		t.Cleanup(stop)
	}
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	for _, h := range []host.Host{a, b} {
		if err := h.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	// DCUtR serves once the host has a public address to punch with,
	// and handles relayed connections made after that.
	dcutr := func(h host.Host) bool { return slices.Contains(h.Mux().Protocols(), "/libp2p/dcutr") }
	waitFor(t, ctx, "hole punching on both", func() bool { return dcutr(a) && dcutr(b) })
	if err := dialThrough(t, ctx, b, r, a.ID()); err != nil {
		t.Fatalf("B reaches A through the relay: %v", err)
	}
	// A first attempt may fail (A's dial is refused); a later one,
	// roles swapped, succeeds. Both ends report.
	var e connectivity.HolePunchEvent
	for !e.Success {
		select {
		case e = <-punched:
			if e.Peer != a.ID() && e.Peer != b.ID() {
				t.Fatalf("hole punch with a stranger: %+v", e)
			}
		case <-ctx.Done():
			t.Fatalf("no successful hole punch reported within %v; link %v", timeout, connectivity.LinkTo(b.Network(), a.ID()))
		}
	}
	waitFor(t, ctx, "a direct link", func() bool { return connectivity.LinkTo(b.Network(), a.ID()) == connectivity.LinkDirect })
	for _, c := range []struct {
		conn  *connectivity.Manager
		other peer.ID
	}{{ac, b.ID()}, {bc, a.ID()}} {
		if last, ok := c.conn.LastHolePunch(c.other); ok && last.Peer != c.other {
			t.Errorf("last hole punch with %s is about %s", c.other, last.Peer)
		}
	}
	if _, ok := ac.LastHolePunch(r.ID()); ok {
		t.Errorf("a hole punch with the relay reported")
	}
	// The tracer given with HolePunchTracer hears every event, starts
	// included, not only the ends OnHolePunch reports.
	// B's own end may come a moment after the end A reported.
	for _, want := range []string{holepunch.StartHolePunchEvtT, holepunch.EndHolePunchEvtT} {
		waitFor(t, ctx, "the extra tracer seeing "+want, func() bool { return traced.saw(want) })
	}
}

// typeTracer records the types of the hole punching events it hears.
type typeTracer struct {
	mu   sync.Mutex
	seen []string
}

func (tt *typeTracer) Trace(e *holepunch.Event) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.seen = append(tt.seen, e.Type)
}

func (tt *typeTracer) saw(typ string) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return slices.Contains(tt.seen, typ)
}

func (tt *typeTracer) types() []string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return slices.Clone(tt.seen)
}

// A relayed connection made at once, before either host's hole punching
// is ready (go-libp2p's DCUtR ignores connections older than itself), is
// held until it is ready, and then punched. Without the hold (PunchWait
// 0) it stays relayed. The setup is TestHolePunchReported's, but B dials
// through the relay as soon as A has a reservation, which it asks for
// itself rather than waiting for AutoRelay.
func TestRelayedConnectionWaitsForPunching(t *testing.T) {
	if !inChild(t) {
		return
	}
	ctx, mem, r := publicGroupRelay(t)
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	// A clock that never moves: the hold can end only because hole
	// punching became ready, never by its deadline.
	private := []connectivity.Option{connectivity.WithReachability(connectivity.ReachabilityPrivate), connectivity.WithGroupRelay(false),
		connectivity.WithClock(clockwork.NewFakeClock())}
	traceA, traceB := new(typeTracer), new(typeTracer)
	a, ac := connHost(t, append(private, connectivity.WithHolePunchTracer(traceA))...)
	member(t, ctx, a, mem)
	b, bc := refusingHost(t, append(private, connectivity.WithHolePunchTracer(traceB))...)
	member(t, ctx, b, mem)
	punched := make(chan connectivity.HolePunchEvent, 8)
	for _, c := range []*connectivity.Manager{ac, bc} {
		t.Cleanup(c.OnHolePunch(func(e connectivity.HolePunchEvent) { punched <- e }))
	}
	ri := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}
	if err := a.Connect(ctx, ri); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, a, ri); err != nil {
		t.Fatalf("A's reservation: %v", err)
	}
	dcutr := func(h host.Host) bool { return slices.Contains(h.Mux().Protocols(), "/libp2p/dcutr") }
	if dcutr(a) || dcutr(b) {
		// Hole punching polls from 250 ms after start: a machine too
		// busy to get here before that leaves nothing to hold.
		t.Skipf("hole punching ready before the relayed dial (A %v, B %v): too slow here to test the hold", dcutr(a), dcutr(b))
	}
	if err := dialThrough(t, ctx, b, r, a.ID()); err != nil {
		t.Fatalf("B reaches A through the relay: %v", err)
	}
	for {
		select {
		case e := <-punched:
			if e.Success {
				waitFor(t, ctx, "a direct link", func() bool { return connectivity.LinkTo(b.Network(), a.ID()) == connectivity.LinkDirect })
				return
			}
		case <-ctx.Done():
			var conns []string
			for _, c := range a.Network().ConnsToPeer(b.ID()) {
				conns = append(conns, fmt.Sprintf("%s %s %v", c.Stat().Direction, c.RemoteMultiaddr(), c.Stat().Opened.Format("15:04:05.000")))
			}
			t.Fatalf("no successful hole punch within %v; link %v; A's conns to B %v; A's events %v, B's %v; dcutr A %v B %v",
				timeout, connectivity.LinkTo(b.Network(), a.ID()), conns, traceA.types(), traceB.types(), dcutr(a), dcutr(b))
		}
	}
}

// publicGroupRelay makes 127.0.0.1 count as public (so the test runs in a
// child process of its own, inChild), and starts a public member serving
// the group relay, attached to a new in-memory rendezvous.
func publicGroupRelay(t *testing.T) (context.Context, *discovery.Memory, host.Host) {
	t.Helper()
	if err := connectivity.TreatAsPublic(netip.MustParsePrefix("127.0.0.1/32")); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	mem := discovery.NewMemory()
	r, rc := connHost(t, connectivity.WithReachability(connectivity.ReachabilityPublic))
	rc.Attach(member(t, ctx, r, mem))
	return ctx, mem, r
}

// refusingHost is a host behind NAT as far as inbound connections go: on
// loopback TCP only (go-libp2p gates an inbound TCP connection before its
// handshake, a QUIC one only after, so the dialer would see it succeed),
// with a gater that refuses every inbound connection.
func refusingHost(t *testing.T, opts ...connectivity.Option) (host.Host, *connectivity.Manager) {
	t.Helper()
	return connHost(t, append([]connectivity.Option{
		connectivity.WithListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		connectivity.WithConnectionGater(refuseInbound{})}, opts...)...)
}

// refuseInbound is a connection gater that accepts no inbound connection,
// as a NAT without a mapping drops unsolicited packets.
type refuseInbound struct{}

func (refuseInbound) InterceptPeerDial(peer.ID) bool               { return true }
func (refuseInbound) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (refuseInbound) InterceptAccept(network.ConnMultiaddrs) bool  { return false }
func (refuseInbound) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (refuseInbound) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// A member with a public address learns that it is public from AutoNAT
// v2, which every host of Connectivity.Options serves, and starts the
// group relay: go-libp2p alone takes its reachability from AutoNAT v1
// only, and here nobody serves v1 (as members behind NAT stop doing once
// they find themselves private). 127.0.0.1 plays the public internet
// (TreatAsPublic, in a process of its own).
func TestPublicWhenAutoNATv2Confirms(t *testing.T) {
	if !inChild(t) {
		return
	}
	if err := connectivity.TreatAsPublic(netip.MustParsePrefix("127.0.0.1/32")); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	r, rc := connHost(t) // auto
	// AutoNAT v2 asks each server once per two minutes, and wants two
	// confirmations: three servers.
	for range 3 {
		s := newHost(t, libp2p.EnableAutoNATv2())
		if err := s.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(r) })
	if got := rc.CurrentReachability(); got != network.ReachabilityPublic {
		t.Errorf("reachability %v, want public", got)
	}
}
