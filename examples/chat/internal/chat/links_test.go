package chat_test

import (
	"context"
	"encoding/binary"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/examples/chat/internal/chat"
)

// gate is a connection gater that cuts this host off from the peers it
// blocks: no dial to them and no connection from them, except, when
// circuits is set, connections through a circuit relay. It stands for the
// NATs and firewalls between two members of a room, on loopback.
type gate struct {
	mu       sync.Mutex
	blocked  map[peer.ID]bool
	circuits bool
}

func newGate() *gate { return &gate{blocked: make(map[peer.ID]bool)} }

func (g *gate) block(p peer.ID, circuits bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[p], g.circuits = true, circuits
}

func (g *gate) unblock(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.blocked, p)
}

func (g *gate) allows(p peer.ID, a ma.Multiaddr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.blocked[p] {
		return true
	}
	return g.circuits && a != nil && isCircuit(a)
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func (g *gate) InterceptPeerDial(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.blocked[p] || g.circuits
}

func (g *gate) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool { return g.allows(p, a) }

func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gate) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.allows(p, c.RemoteMultiaddr())
}

func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// newHost is a libp2p host on loopback that the test owns and closes.
func newHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// withHost makes a chat use h instead of building its own host.
func withHost(h host.Host) fx.Option { return fx.Replace(fx.Annotate(h, fx.As(new(host.Host)))) }

// gatedHost is a chat's host behind a gate.
func gatedHost(t *testing.T) (host.Host, *gate) {
	g := newGate()
	return newHost(t, libp2p.ConnectionGater(g)), g
}

// newCircuitRelay runs a circuit relay v2 on loopback, as a public relay
// would (default limits: the connections it carries are Limited).
func newCircuitRelay(t *testing.T) host.Host {
	return newHost(t, libp2p.EnableRelayService(), libp2p.ForceReachabilityPublic())
}

// relayThrough reserves a slot for to on the relay, then connects from to
// it through the relay, retrying while the relay service starts.
func relayThrough(t *testing.T, relay, from, to host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ri := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Addrs()}
	var err error
	for ctx.Err() == nil {
		if err = to.Connect(ctx, ri); err == nil {
			if _, err = client.Reserve(ctx, to, ri); err == nil {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("reserving on the relay: %v", err)
	}
	circuit := ma.StringCast("/p2p/" + relay.ID().String() + "/p2p-circuit")
	var addrs []ma.Multiaddr
	for _, a := range relay.Addrs() {
		addrs = append(addrs, a.Encapsulate(circuit))
	}
	// Again until it works: the chat's own connector may have just failed
	// a direct dial, and libp2p then backs off dialing that peer at all.
	for {
		if sw, ok := from.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(to.ID())
		}
		err = from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: addrs})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("connecting through the relay: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range from.Network().ConnsToPeer(to.ID()) {
		if !isCircuit(c.RemoteMultiaddr()) {
			t.Fatalf("a direct connection got through the gate: %s", c.RemoteMultiaddr())
		}
	}
}

// relayedPair starts alice and bob, who meet through an in-memory
// rendezvous, on hosts whose gates refuse every direct connection between
// them, and connects alice to bob through relay; it returns the two and
// their gates.
func relayedPair(t *testing.T, relay host.Host) (alice, bob *running, gates [2]*gate) {
	t.Helper()
	ha, ga := gatedHost(t)
	hb, gb := gatedHost(t)
	ga.block(hb.ID(), true)
	gb.block(ha.ID(), true)
	swap := fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory()))
	alice = start(t, testConfig("alice"), swap, withHost(ha))
	bob = start(t, testConfig("bob"), swap, withHost(hb))
	relayThrough(t, relay, ha, hb)
	return alice, bob, [2]*gate{ga, gb}
}

// peersLine types /peers and waits for other's line.
func peersLine(r *running, other *running, re string) []string {
	r.t.Helper()
	r.say("/peers")
	return r.wait(r.name+"'s /peers", line(`^\*   (%s|\(no name yet\))\s+%s  %s`, other.name, regexp.QuoteMeta(shortID(other)), re))
}

// countLines counts the lines of text that match re.
func countLines(text string, re *regexp.Regexp) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

// TestPeersSaysDirect: /peers says "direct" of a member connected
// directly, and the status line of the connection says so too.
func TestPeersSaysDirect(t *testing.T) {
	swap := fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory()))
	alice := start(t, testConfig("alice"), swap)
	bob := start(t, testConfig("bob"), swap)
	meet(t, alice, bob)
	alice.status.wait(t, "alice's status", line(`^-- connected to %s \((we|they) dialed, direct\)$`, who(bob)))
	peersLine(alice, bob, `here; found via memory after \S+; direct, connected since `)
}

// TestRelayedMemberChats: two members who can reach each other only
// through a circuit relay (a gate refuses every direct connection between
// them; the relay runs with its default limits, so the connection is
// Limited) still chat, and /peers says the link is relayed, naming the
// relay.
func TestRelayedMemberChats(t *testing.T) {
	relay := newCircuitRelay(t)
	alice, bob, _ := relayedPair(t, relay)

	meet(t, alice, bob)
	alice.say("hello over the relay")
	bob.wait("bob", line(`^<alice> hello over the relay$`))
	bob.say("and back")
	alice.wait("alice", line(`^<bob> and back$`))
	rid := regexp.QuoteMeta(shortIDOf(relay.ID()))
	bob.status.wait(t, "bob's status", line(`^-- connected to %s \(they dialed, relayed through %s\)`, who(alice), rid))
	peersLine(bob, alice, `here; found via memory after \S+; relayed through `+rid+`, connected since `)
}

// TestRelayLimitIsNoLeave: a relayed-only conversation outlives the
// relay's per-connection limit (2 s here): the connection is cut and made
// again through the relay, and the room shows no departure and no second
// arrival, only the status lines, and lines still arrive.
func TestRelayLimitIsNoLeave(t *testing.T) {
	relay := newHost(t, libp2p.EnableRelayService(relayv2.WithLimit(&relayv2.RelayLimit{Duration: 2 * time.Second, Data: 1 << 20})),
		libp2p.ForceReachabilityPublic())
	alice, bob, gates := relayedPair(t, relay)
	ha, hb, ga, gb := alice.host, bob.host, gates[0], gates[1]
	meet(t, alice, bob)
	alice.status.wait(t, "alice's status", line(`^-- lost contact with %s, retrying quietly$`, who(bob)))
	relayThrough(t, relay, ha, hb) // what the connector does, given the circuit address
	alice.status.wait(t, "alice's status", line(`^-- connected to %s \(we dialed, relayed through .*; back in contact$`, who(bob)))
	alice.say("after the cut")
	bob.wait("bob", line(`^<alice> after the cut$`))
	// The new relayed connection has the same limit: a direct one from
	// now on keeps the next cut from mattering to what is checked.
	ga.unblock(hb.ID())
	gb.unblock(ha.ID())
	if err := ha.Connect(context.Background(), peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(chat.DepartGrace + time.Second) // past the grace: nothing more is to come
	for _, c := range [][2]*running{{alice, bob}, {bob, alice}} {
		out := c[0].out.String()
		if strings.Contains(out, "* "+c[1].name+" left") || countLines(out, line(`^\* %s (joined|is here)`, c[1].name)) != 1 {
			t.Errorf("%s's room shows %s leave or arrive again over a relay's limit:\n%s", c[0].name, c[1].name, out)
		}
	}
}

// TestLineThroughAnotherMember: bob can reach carol but not alice (gates
// refuse every connection between them, relays included). alice sees bob
// arrive, his hello forwarded by carol, and answers at once: the line
// reaches bob through carol. With gossipsub it did not: carol had bob on
// the topic but not yet in her mesh (it forms at the next heartbeat, a
// second later) and forwarded to her mesh only.
func TestLineThroughAnotherMember(t *testing.T) {
	mem := discovery.NewMemory()
	swap := fx.Replace(libp2padapter.MemoryOpener(mem))
	ha, ga := gatedHost(t)
	hb, gb := gatedHost(t)
	ga.block(hb.ID(), true)
	gb.block(ha.ID(), true)
	alice := start(t, testConfig("alice"), swap, withHost(ha))
	carol := start(t, testConfig("carol"), swap)
	meet(t, alice, carol)
	// Past two gossipsub heartbeats: had carol a mesh, alice would be in
	// it, and bob's hello would reach alice the moment carol has it.
	time.Sleep(2500 * time.Millisecond)
	bob := start(t, testConfig("bob"), swap, withHost(hb))
	alice.wait("alice", line(`^\* bob joined \(%s\)$`, hb.ID()))
	alice.say("welcome, bob")
	bob.wait("bob", line(`^<alice> welcome, bob$`))
	carol.wait("carol", line(`^<alice> welcome, bob$`))
	if c := ha.Network().ConnsToPeer(hb.ID()); len(c) != 0 {
		t.Errorf("alice and bob connected (%s): the line did not have to go through carol", c[0].RemoteMultiaddr())
	}
}

// TestUnlimitedRelayIsRelayed: a relay with unlimited circuits makes
// connections that are not Limited (pubsub uses them as it would a direct
// one), yet they are relayed, and /peers says so.
func TestUnlimitedRelayIsRelayed(t *testing.T) {
	relay := newHost(t, libp2p.EnableRelayService(relayv2.WithInfiniteLimits()), libp2p.ForceReachabilityPublic())
	alice, bob, _ := relayedPair(t, relay)
	ha, hb := alice.host, bob.host
	for _, c := range ha.Network().ConnsToPeer(hb.ID()) {
		if c.Stat().Limited {
			t.Fatal("the unlimited relay made a Limited connection")
		}
	}
	meet(t, alice, bob)
	alice.say("no limits")
	bob.wait("bob", line(`^<alice> no limits$`))
	rid := regexp.QuoteMeta(shortIDOf(relay.ID()))
	peersLine(bob, alice, `here; found via memory after \S+; relayed through `+rid+`, connected since `)
}

// redial steps a chat's fake clock through its connector's redials to
// peer until the monitor has counted at least n failed dials.
func redial(t *testing.T, clock *clockwork.FakeClock, mon *chat.Monitor, peer peer.ID, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for mon.Link(peer).FailedDials < n {
		// The connector's one timer: the yield or the next retry.
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatalf("%d failed dials counted, want %d: %v", mon.Link(peer).FailedDials, n, err)
		}
		clock.Advance(time.Minute) // more than any backoff
	}
}

// stepUntil fires the connector's timers, as they come, until ok. A dial
// may be in flight with no timer pending, or the other side may dial: a
// moment without a timer is no failure.
func stepUntil(t *testing.T, clock *clockwork.FakeClock, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("still waiting after stepping the clock")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if clock.BlockUntilContext(ctx, 1) == nil {
			clock.Advance(time.Minute)
		}
		cancel()
	}
}

// fakeClock gives a chat's connector a fake clock, and returns the
// chat's monitor through mon.
func fakeClock(clock *clockwork.FakeClock, mon **chat.Monitor) fx.Option {
	return fx.Options(fx.Decorate(func(clockwork.Clock) clockwork.Clock { return clock }), fx.Populate(mon))
}

// TestUnreachableMemberOneLine: a member found but unreachable (a gate
// refuses every connection between the two) gets one status line with the
// reason, however many times it is redialed; /peers says it is not
// connected, why, and how many dials failed; when it can be reached at
// last, one line says so.
func TestUnreachableMemberOneLine(t *testing.T) {
	ha, ga := gatedHost(t)
	hb, gb := gatedHost(t)
	ga.block(hb.ID(), false)
	gb.block(ha.ID(), false)
	swap := fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory()))
	clock := clockwork.NewFakeClock()
	var mon *chat.Monitor
	alice := start(t, testConfig("alice"), swap, withHost(ha), fakeClock(clock, &mon))
	bob := start(t, testConfig("bob"), swap, withHost(hb))
	alice.status.wait(t, "alice's status", line(`^-- found %s via memory`, who(bob)))

	const dials = 8
	redial(t, clock, mon, hb.ID(), dials)
	about := line(`%s`, who(bob))
	cannot := line(`^-- cannot reach %s: all dials failed: gater disallows connection to peer; retrying quietly$`, who(bob))
	if n, m := countLines(alice.status.String(), about), countLines(alice.status.String(), cannot); n != 2 || m != 1 {
		t.Errorf("after %d failed dials alice printed %d status lines about bob, %d of them 'cannot reach', want 2 (found, cannot reach) and 1:\n%s",
			mon.Link(hb.ID()).FailedDials, n, m, alice.status)
	}
	peersLine(alice, bob, `not in the room; found via memory after \S+; not connected: all dials failed: gater disallows connection to peer \(\d+ failed dials\)$`)

	ga.unblock(hb.ID())
	gb.unblock(ha.ID())
	reached := line(`^-- connected to %s \((we|they) dialed, direct\); reachable after \d+ failed dials$`, who(bob))
	stepUntil(t, clock, func() bool { return countLines(alice.status.String(), reached) > 0 })
	meet(t, alice, bob)
	if n := countLines(alice.status.String(), cannot); n != 1 {
		t.Errorf("alice printed %d 'cannot reach' lines about bob, want 1:\n%s", n, alice.status)
	}
	peersLine(alice, bob, `here; found via memory after \S+; direct, connected since `)
}

// TestLostContactOneLine: a member whose connection is lost while it is
// still found gets one line, "lost contact, retrying quietly", and the
// failed redials that follow say nothing; when it is back, one line says
// so.
func TestLostContactOneLine(t *testing.T) {
	ha, ga := gatedHost(t)
	hb, gb := gatedHost(t)
	swap := fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory()))
	clock := clockwork.NewFakeClock()
	var mon *chat.Monitor
	alice := start(t, testConfig("alice"), swap, withHost(ha), fakeClock(clock, &mon))
	bob := start(t, testConfig("bob"), swap, withHost(hb))
	meet(t, alice, bob) // whoever's ID sorts lower dials at once

	// The network between them goes.
	ga.block(hb.ID(), false)
	gb.block(ha.ID(), false)
	ha.Network().ClosePeer(hb.ID())
	lost := line(`^-- lost contact with %s, retrying quietly$`, who(bob))
	alice.status.wait(t, "alice's status", lost)
	alice.wait("alice", line(`^\* bob left \(connection closed\)$`))
	redial(t, clock, mon, hb.ID(), 6)
	text := alice.status.String()
	if n := countLines(text, lost); n != 1 {
		t.Errorf("alice printed %d 'lost contact' lines, want 1:\n%s", n, text)
	}
	if n := countLines(text, line(`cannot reach|could not reach`)); n != 0 {
		t.Errorf("alice printed %d lines about redials after losing contact, want none:\n%s", n, text)
	}

	ga.unblock(hb.ID())
	gb.unblock(ha.ID())
	reached := line(`^-- connected to %s \((we|they) dialed, direct\); reachable after \d+ failed dials$`, who(bob))
	stepUntil(t, clock, func() bool { return countLines(alice.status.String(), reached) > 0 })
}

// TestHolePunchedLink: a relayed link that turns direct while the
// hole-punching tracer reports a punch under way is told once, when the
// punch ends, as hole punched; /peers then says "direct (hole punched)".
// A punch that failed before shows in /peers and prints nothing. A line
// sent once the link is direct, while the relayed path is still open,
// arrives once.
func TestHolePunchedLink(t *testing.T) {
	relay := newCircuitRelay(t)
	ha, ga := gatedHost(t)
	hb, gb := gatedHost(t)
	ga.block(hb.ID(), true)
	gb.block(ha.ID(), true)
	swap := fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory()))
	var punches *chat.HolePunches
	alice := start(t, testConfig("alice"), swap, withHost(ha), fx.Populate(&punches))
	bob := start(t, testConfig("bob"), swap, withHost(hb))
	relayThrough(t, relay, ha, hb)
	meet(t, alice, bob)
	rid := regexp.QuoteMeta(shortIDOf(relay.ID()))
	alice.status.wait(t, "alice's status", line(`^-- connected to %s \(we dialed, relayed through %s\)`, who(bob), rid))

	trace := func(typ string, evt any) {
		punches.Trace(&holepunch.Event{Timestamp: time.Now().UnixNano(), Peer: ha.ID(), Remote: hb.ID(), Type: typ, Evt: evt})
	}
	trace(holepunch.StartHolePunchEvtT, &holepunch.StartHolePunchEvt{RTT: time.Millisecond})
	trace(holepunch.EndHolePunchEvtT, &holepunch.EndHolePunchEvt{EllapsedTime: 5 * time.Second, Error: "all retries\nfailed"})
	peersLine(alice, bob, `here; found via memory after \S+; relayed through `+rid+`, connected since .*; hole punch failed: all retries failed$`)

	// The punch: under way, a direct connection appears, then it ends.
	trace(holepunch.StartHolePunchEvtT, &holepunch.StartHolePunchEvt{RTT: time.Millisecond})
	ga.unblock(hb.ID())
	gb.unblock(ha.ID())
	ctx, cancel := context.WithTimeout(network.WithForceDirectDial(context.Background(), "test"), timeout)
	defer cancel()
	if err := ha.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		t.Fatal(err)
	}
	direct := line(`^-- direct link to %s`, who(bob))
	time.Sleep(500 * time.Millisecond) // time enough for a wrong line
	if n := countLines(alice.status.String(), direct); n != 0 {
		t.Errorf("a direct link was told before the punch ended:\n%s", alice.status)
	}
	trace(holepunch.EndHolePunchEvtT, &holepunch.EndHolePunchEvt{Success: true, EllapsedTime: 42 * time.Millisecond})
	alice.status.wait(t, "alice's status", line(`^-- direct link to %s: hole punched in 42ms$`, who(bob)))
	peersLine(alice, bob, `here; found via memory after \S+; direct \(hole punched\), connected since `)
	if n := countLines(alice.status.String(), direct); n != 1 {
		t.Errorf("alice told the direct link %d times, want once:\n%s", n, alice.status)
	}

	bob.say("after the punch")
	alice.wait("alice", line(`^<bob> after the punch$`))
	bob.say("and again")
	alice.wait("alice", line(`^<bob> and again$`))
	if n := countLines(alice.out.String(), line(`^<bob> after the punch$`)); n != 1 {
		t.Errorf("alice showed bob's line %d times, want once:\n%s", n, alice.out)
	}

	// The direct link goes; the relayed one stays, and so does bob. The
	// room's relayed streams go first, so that when pubsub loses bob
	// nothing else reaches him until the room opens them again.
	for _, c := range ha.Network().ConnsToPeer(hb.ID()) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == "/phrasemeet-chat/relayed/1.0.0" {
				s.Reset()
			}
		}
	}
	ga.block(hb.ID(), true)
	gb.block(ha.ID(), true)
	for _, c := range ha.Network().ConnsToPeer(hb.ID()) {
		if !isCircuit(c.RemoteMultiaddr()) {
			c.Close()
		}
	}
	alice.status.wait(t, "alice's status", line(`^-- direct link to %s closed; still relayed through %s$`, who(bob), rid))
	// A line typed while the room reopens its relayed stream is refused
	// ("nobody got that"), as a user would see; typed again, it arrives.
	sayUntilHeard(t, bob, alice, "relayed again")
	peersLine(alice, bob, `here; found via memory after \S+; relayed through `+rid+`, connected since `)
	if strings.Contains(alice.out.String(), "bob left") {
		t.Errorf("bob was said to leave when only the direct link went:\n%s", alice.out)
	}
}

// TestRelayedPathRefusesStrangers: a peer that discovery did not find
// gets nothing from the room's relayed path: its stream is reset and
// what it sent is not shown.
func TestRelayedPathRefusesStrangers(t *testing.T) {
	alice := start(t, testConfig("alice"), fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())))
	stranger := newHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := stranger.Connect(ctx, peer.AddrInfo{ID: alice.host.ID(), Addrs: alice.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := stranger.NewStream(ctx, alice.host.ID(), "/phrasemeet-chat/relayed/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	msg := []byte(`{"k":"msg","n":"mallory","t":"let me in","j":1,"q":1}`)
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(msg))), msg...)); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("the stranger's stream: read gave %v, want a reset", err)
	}
	if strings.Contains(alice.out.String(), "mallory") {
		t.Errorf("alice showed what a stranger sent:\n%s", alice.out)
	}
}

// sayUntilHeard has from type text until to shows it.
func sayUntilHeard(t *testing.T, from, to *running, text string) {
	t.Helper()
	heard := line(`^<%s> %s$`, from.name, regexp.QuoteMeta(text))
	deadline := time.Now().Add(timeout)
	for countLines(to.out.String(), heard) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %q:\n%s\n%s\n%s's side:\n%s", to.name, text, to.out, to.status, from.name, from.out)
		}
		from.say(text)
		time.Sleep(500 * time.Millisecond)
	}
}

func shortIDOf(id peer.ID) string {
	s := id.String()
	return "…" + s[len(s)-6:]
}
