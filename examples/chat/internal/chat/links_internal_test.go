package chat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

func addrs(ss ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

const relayID = "12D3KooWPGVE7bDCUe4TwWRyu8mPw28h4UFiEPTZdgd1wx2u2zxR"

// labPublic treats the test internet's documentation range as public, as
// a host given --public-cidr 198.51.100.0/24 would.
func labPublic(a ma.Multiaddr) bool {
	if ip, err := manet.ToIP(a); err == nil {
		_, lab, _ := net.ParseCIDR("198.51.100.0/24")
		if lab.Contains(ip) {
			return true
		}
	}
	return manet.IsPublicAddr(a)
}

func TestUnreachableReason(t *testing.T) {
	refused := errors.New("dial tcp4 10.11.0.2:4001: connect: connection refused")
	home1 := addrs("/ip4/10.11.0.2/udp/4001/quic-v1", "/ip4/10.11.0.2/tcp/4001")
	home2 := addrs("/ip4/10.12.0.2/tcp/4001", "/ip6/::1/tcp/4001")
	public := addrs("/ip4/8.8.4.4/tcp/4001")
	lab := addrs("/ip4/198.51.100.9/tcp/4001")
	circuit := addrs("/ip4/10.11.0.2/tcp/4001", "/ip4/8.8.4.4/tcp/4001/p2p/"+relayID+"/p2p-circuit")
	withRelay := append(addrs("/ip4/10.12.0.2/tcp/4001"), circuit[1])
	withLabRelay := addrs("/ip4/10.12.0.2/tcp/4001", "/ip4/198.51.100.1/tcp/4001/p2p/"+relayID+"/p2p-circuit")
	loopback := addrs("/ip4/127.0.0.1/tcp/4001")
	for _, c := range []struct {
		name         string
		theirs, ours []ma.Multiaddr
		public       PublicAddrFunc
		want         string
	}{
		{"no address", nil, home2, manet.IsPublicAddr, "it published no address"},
		{"both behind NAT", home1, home2, manet.IsPublicAddr, "both behind NAT and no relay known"},
		{"they have a relay", circuit, home2, manet.IsPublicAddr, "all dials failed: connection refused"},
		{"we have a relay", home1, withRelay, manet.IsPublicAddr, "it is behind NAT with no relay: waiting for it to reach us"},
		{"we have a relay manet calls unroutable", home1, withLabRelay, manet.IsPublicAddr, "it is behind NAT with no relay: waiting for it to reach us"},
		{"we are public", home1, public, manet.IsPublicAddr, "it is behind NAT with no relay: waiting for it to reach us"},
		{"they are public", public, home2, manet.IsPublicAddr, "all dials failed: connection refused"},
		{"one machine", loopback, loopback, manet.IsPublicAddr, "all dials failed: connection refused"},
		{"we have loopback only", home1, loopback, manet.IsPublicAddr, "both behind NAT and no relay known"},
		{"lab range unroutable", lab, home2, manet.IsPublicAddr, "both behind NAT and no relay known"},
		{"lab range public", lab, home2, labPublic, "all dials failed: connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := unreachableReason(c.theirs, c.ours, c.public, refused); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestShortDialError(t *testing.T) {
	id, _ := peer.Decode(relayID)
	a1, a2, a3 := ma.StringCast("/ip4/10.0.0.1/tcp/1"), ma.StringCast("/ip4/10.0.0.2/tcp/1"), ma.StringCast("/ip4/10.0.0.3/udp/1/quic-v1")
	refused := errors.New("dial tcp4 10.0.0.1:1: connect: connection refused")
	multi := &swarm.DialError{Peer: id, DialErrors: []swarm.TransportError{
		{Address: a1, Cause: refused},
		{Address: a2, Cause: refused},
		{Address: a3, Cause: errors.New("timeout:\n\tno recent network activity")},
	}}
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "unknown error"},
		{context.DeadlineExceeded, "timed out"},
		{fmt.Errorf("failed to dial: %w", multi), "connection refused; no recent network activity (3 addresses)"},
		{&swarm.DialError{Peer: id, DialErrors: multi.DialErrors[:1]}, "connection refused"},
		{&swarm.DialError{Peer: id, Cause: swarm.ErrGaterDisallowedConnection}, "gater disallows connection to peer"},
		{errors.New("failed to dial: line one\n  * [/ip4/1.2.3.4] two\tthree"), "line one * [/ip4/1.2.3.4] two three"},
	} {
		if got := shortDialError(c.err); got != c.want {
			t.Errorf("shortDialError(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestCircuitRelay(t *testing.T) {
	id, _ := peer.Decode(relayID)
	for _, c := range []struct {
		addr    string
		relay   peer.ID
		circuit bool
	}{
		{"/ip4/1.2.3.4/tcp/1", "", false},
		{"/ip4/1.2.3.4/tcp/1/p2p/" + relayID + "/p2p-circuit", id, true},
		{"/ip4/1.2.3.4/tcp/1/p2p/" + relayID + "/p2p-circuit/p2p/12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv", id, true},
		{"/p2p-circuit", "", true},
	} {
		relay, ok := circuitRelay(ma.StringCast(c.addr))
		if relay != c.relay || ok != c.circuit {
			t.Errorf("circuitRelay(%s) = %s, %v; want %s, %v", c.addr, relay, ok, c.relay, c.circuit)
		}
	}
}

// TestRoomShowsAMessageOnce: a numbered message that arrives twice (over
// pubsub through another member, and over the relayed path) is shown
// once; unnumbered ones, from chats before numbering, are all shown.
func TestRoomShowsAMessageOnce(t *testing.T) {
	var out strings.Builder
	seen, _ := lru.New[msgKey, struct{}](seenMessages)
	r := &Room{con: &Console{out: &out}, nick: "me", seen: seen, members: make(map[peer.ID]*member)}
	bob, _ := peer.Decode(relayID)
	for _, m := range []wireMessage{
		{Kind: kindText, Nick: "bob", Text: "one", Joined: 7, Seq: 1},
		{Kind: kindText, Nick: "bob", Text: "one", Joined: 7, Seq: 1},
		{Kind: kindText, Nick: "bob", Text: "two", Joined: 7, Seq: 2},
		{Kind: kindText, Nick: "bob", Text: "one again", Joined: 8, Seq: 1}, // a new session
		{Kind: kindText, Nick: "bob", Text: "old", Joined: 7},
		{Kind: kindText, Nick: "bob", Text: "old", Joined: 7},
	} {
		r.handle(bob, m)
	}
	got := strings.Count(out.String(), "\n<bob> ")
	want := "<bob> one\n<bob> two\n<bob> one again\n<bob> old\n<bob> old\n"
	if !strings.HasSuffix(out.String(), want) || got != 5 {
		t.Errorf("shown:\n%s\nwant to end with:\n%s", out.String(), want)
	}
}

// TestStampNumbersMessages: every message a session sends has its own
// number, from 1, and the session's joining time: the key a receiver
// drops duplicates by.
func TestStampNumbersMessages(t *testing.T) {
	r := &Room{joined: time.UnixMilli(1767225600000)}
	for want := int64(1); want <= 3; want++ {
		m := r.stamp(wireMessage{Kind: kindText, Text: "x"})
		if m.Seq != want || m.Joined != 1767225600000 {
			t.Fatalf("message %d stamped with seq %d, joined %d", want, m.Seq, m.Joined)
		}
	}
}

// TestDialedTellsOnce drives the monitor's dial rule with connector
// events: the first failure gets a status line with its reason, later
// ones count quietly, and a "dial backoff" (libp2p refusing to redial an
// address that just failed) does not replace the reason it stands for.
func TestDialedTellsOnce(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var status strings.Builder
	m := &Monitor{h: h, con: &Console{status: &status}, punches: newHolePunches(), public: manet.IsPublicAddr,
		found: make(map[peer.ID]Found), links: make(map[peer.ID]*linkState)}
	bob, _ := peer.Decode(relayID)
	home := addrs("/ip4/10.11.0.2/tcp/4001")
	refused := &swarm.DialError{Peer: bob, DialErrors: []swarm.TransportError{{Address: home[0], Cause: errors.New("connect: connection refused")}}}
	backoff := &swarm.DialError{Peer: bob, Cause: swarm.ErrDialBackoff}
	fail := func(err error) {
		m.dialed(libp2padapter.ConnectEvent{Type: libp2padapter.Failed, Peer: peer.AddrInfo{ID: bob, Addrs: home}, Err: err, RetryIn: time.Second})
	}
	fail(refused)
	fail(backoff)
	fail(backoff)
	const want = "-- cannot reach …wx2u2zxR: both behind NAT and no relay known; retrying quietly\n"
	if got := status.String(); got != strings.Replace(want, "…wx2u2zxR", shortID(bob), 1) {
		t.Errorf("status lines:\n%s\nwant:\n%s", got, want)
	}
	// It is public: the error itself is the reason.
	m.public = func(ma.Multiaddr) bool { return true }
	delete(m.links, bob)
	status.Reset()
	fail(refused)
	fail(backoff)
	if l := m.Link(bob); l.FailedDials != 2 || l.Reason != "all dials failed: connection refused" {
		t.Errorf("after a refusal and a backoff: %d failed dials, reason %q", l.FailedDials, l.Reason)
	}
}

// TestSendRelayedSkipsListed: the relayed path carries a message only to
// the members pubsub does not list, and a full queue drops it rather than
// blocking.
func TestSendRelayedSkipsListed(t *testing.T) {
	listed, _ := peer.Decode(relayID)
	unlisted, _ := peer.Decode("12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv")
	full, _ := peer.Decode("12D3KooWQDso6Z4WdsiVorEPpX5Gjaeh6ka2XjFeWZjYmU3Ga22f")
	r := &Room{relayed: map[peer.ID]*relayedStream{
		listed:   {queue: make(chan []byte, 1)},
		unlisted: {queue: make(chan []byte, 1)},
		full:     {queue: make(chan []byte)},
	}}
	if n := r.sendRelayed([]byte("x"), []peer.ID{listed}); n != 1 {
		t.Errorf("sent to %d members, want 1", n)
	}
	if len(r.relayed[listed].queue) != 0 || len(r.relayed[unlisted].queue) != 1 {
		t.Errorf("queued %d for the listed member and %d for the other, want 0 and 1",
			len(r.relayed[listed].queue), len(r.relayed[unlisted].queue))
	}
}

// TestSendWaitsForAPath: a member shown as here and connected, but
// reached by neither pubsub nor our relayed path yet (its hello came over
// its own relayed stream before ours opened, or a hole punch replaced the
// relayed connection before pubsub took up the direct one), gets a line
// typed meanwhile once a path opens, rather than "nobody got that". A
// member not connected at all is not waited for.
func TestSendWaitsForAPath(t *testing.T) {
	h, other := connectedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join("phrasemeet-test-room")
	if err != nil {
		t.Fatal(err)
	}
	r := &Room{h: h, topic: topic, nick: "me", members: map[peer.ID]*member{
		other.ID(): {id: other.ID(), greeted: true},
	}, relayed: make(map[peer.ID]*relayedStream)}

	// The path opens a moment after the line is typed.
	rs := &relayedStream{queue: make(chan []byte, 1)}
	go func() {
		time.Sleep(300 * time.Millisecond)
		r.mu.Lock()
		r.relayed[other.ID()] = rs
		r.members[other.ID()].viaRelay = true
		r.mu.Unlock()
	}()
	n, err := r.Send(ctx, "typed into the gap")
	if err != nil || n != 1 {
		t.Fatalf("Send into the gap: %d members, %v; want 1", n, err)
	}
	m, err := decodeMessage(<-rs.queue)
	if err != nil || m.Text != "typed into the gap" {
		t.Errorf("the relayed path got %+v, %v", m, err)
	}

	// Connected but not shown as here (it said goodbye), or shown but
	// not connected: nothing to wait for, nobody got it, at once.
	r.mu.Lock()
	delete(r.relayed, other.ID())
	r.members[other.ID()].viaRelay = false
	r.members[other.ID()].greeted = false
	r.mu.Unlock()
	nobody := func(what string) {
		t.Helper()
		short, cancelShort := context.WithTimeout(ctx, 30*time.Second)
		defer cancelShort()
		if n, err := r.Send(short, "to nobody"); n != 0 || err != nil || short.Err() != nil {
			t.Errorf("Send with the member %s: %d, %v, waited out the context: %v", what, n, err, short.Err())
		}
	}
	nobody("gone but connected")
	r.mu.Lock()
	r.members[other.ID()].greeted = true
	r.mu.Unlock()
	if err := h.Network().ClosePeer(other.ID()); err != nil {
		t.Fatal(err)
	}
	nobody("here but not connected")

	// Not connected, but in its departure grace (a relay's limit cut the
	// connection and the connector is making it again): waited for.
	r.mu.Lock()
	r.members[other.ID()].leaving = true
	r.mu.Unlock()
	rs = &relayedStream{queue: make(chan []byte, 1)}
	go func() {
		time.Sleep(300 * time.Millisecond)
		r.mu.Lock()
		r.relayed[other.ID()] = rs
		r.members[other.ID()].viaRelay = true
		r.mu.Unlock()
	}()
	if n, err := r.Send(ctx, "typed while it reconnects"); err != nil || n != 1 {
		t.Fatalf("Send to a member in its grace: %d members, %v; want 1", n, err)
	}
}

// TestLeavingMemberBack: a member in its departure grace heard from in
// the same session shows its lines, and stays leaving (the grace's end
// decides, by its path); one heard from as another session (it restarted
// with the same peer ID) did leave, and arrives anew.
func TestLeavingMemberBack(t *testing.T) {
	var out strings.Builder
	seen, _ := lru.New[msgKey, struct{}](seenMessages)
	bob, _ := peer.Decode(relayID)
	r := &Room{con: &Console{out: &out}, nick: "me", seen: seen, members: make(map[peer.ID]*member), joined: time.UnixMilli(5)}
	r.handle(bob, wireMessage{Kind: kindText, Nick: "bob", Text: "a", Joined: 7, Seq: 1})
	r.members[bob].leaving = true
	r.handle(bob, wireMessage{Kind: kindText, Nick: "bob", Text: "b", Joined: 7, Seq: 2})
	if !r.members[bob].leaving || !r.members[bob].greeted {
		t.Errorf("heard from its session again in its grace: leaving %v, greeted %v; the grace's end decides", r.members[bob].leaving, r.members[bob].greeted)
	}
	r.handle(bob, wireMessage{Kind: kindText, Nick: "bob", Text: "c", Joined: 9, Seq: 1})
	want := fmt.Sprintf("* bob joined (%s)\n<bob> a\n<bob> b\n* bob left (connection closed)\n* bob joined (%s)\n<bob> c\n", bob, bob)
	if out.String() != want {
		t.Errorf("shown:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestDepartGrace: a member that drops without a goodbye while discovery
// lists it (one discovery lost is shown as left at once) is shown as left
// only at the grace's end, and only if no path
// reaches it then, connected or not (a connection no path uses would have
// Send wait for it forever); one whose path opened meanwhile never left.
func TestDepartGrace(t *testing.T) {
	h, other := connectedPair(t)
	room := func() (*Room, *member, *strings.Builder) {
		var out strings.Builder
		mon := &Monitor{found: map[peer.ID]Found{other.ID(): {}}}
		mb := &member{id: other.ID(), nick: "bob", greeted: true}
		return &Room{h: h, con: &Console{out: &out}, mon: mon, ctx: t.Context(),
			members: map[peer.ID]*member{other.ID(): mb}}, mb, &out
	}
	// Discovery lost it: nothing to wait for.
	lost, lostMember, lostOut := room()
	lost.mon.found[other.ID()] = Found{Lost: true}
	lost.mu.Lock()
	lost.departLocked(lostMember)
	if s := lostOut.String(); s != "* bob left (connection closed)\n" {
		t.Errorf("lost by discovery: shown %q at once", s)
	}
	lost.mu.Unlock()

	gone, goneMember, goneOut := room()
	back, backMember, backOut := room()
	for _, r := range []*Room{gone, back} {
		r.mu.Lock()
		r.departLocked(r.members[other.ID()])
		r.mu.Unlock()
	}
	lockedOut := func(r *Room, out *strings.Builder, mb *member) (string, bool, bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return out.String(), mb.leaving, mb.greeted
	}
	time.Sleep(departGrace / 2)
	if s, leaving, _ := lockedOut(gone, goneOut, goneMember); s != "" || !leaving {
		t.Errorf("within the grace: shown %q, leaving %v", s, leaving)
	}
	back.mu.Lock()
	backMember.viaRelay = true // its path opened again
	back.mu.Unlock()
	time.Sleep(departGrace/2 + time.Second)
	if s, _, _ := lockedOut(gone, goneOut, goneMember); s != "* bob left (connection closed)\n" {
		t.Errorf("connected, no path, after the grace: shown %q", s)
	}
	if s, _, greeted := lockedOut(back, backOut, backMember); s != "" || !greeted {
		t.Errorf("back within the grace: shown %q, greeted %v", s, greeted)
	}
}

// connectedPair is two hosts on loopback, the first connected to the
// second; both close when the test ends.
func connectedPair(t *testing.T) (h, other host.Host) {
	t.Helper()
	for _, p := range []*host.Host{&h, &other} {
		n, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		*p = n
	}
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h, other
}
