package chat_test

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/examples/chat/internal/chat"
)

// dialCounter is a connection gater that counts this host's dials to
// each peer (every Connect that gets as far as the swarm), and refuses
// those to the peers it is told to; it lets every connection in.
type dialCounter struct {
	mu     sync.Mutex
	dials  map[peer.ID]int
	refuse map[peer.ID]bool
}

func newDialCounter() *dialCounter {
	return &dialCounter{dials: make(map[peer.ID]int), refuse: make(map[peer.ID]bool)}
}

func (d *dialCounter) count(p peer.ID) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials[p]
}

func (d *dialCounter) InterceptPeerDial(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials[p]++
	return !d.refuse[p]
}

func (d *dialCounter) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (d *dialCounter) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (d *dialCounter) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (d *dialCounter) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// keyedHost is a host on loopback with the given key, listening on
// listen; the test closes it.
func keyedHost(t *testing.T, key crypto.PrivKey, listen string, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.Identity(key), libp2p.ListenAddrStrings(listen)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lingeringOpener is m's opener, except that what a chat announces
// through it stays listed after the chat has gone, until the test leaves
// it (leave): as the slot rendezvous lists a member that said goodbye
// until its tombstone is read, a scan or more later.
func lingeringOpener(t *testing.T, m *discovery.Memory) (open libp2padapter.Opener, leave func()) {
	inner := libp2padapter.MemoryOpener(m)
	var mu sync.Mutex
	var anns []discovery.Announcement
	open = func(ns string) (discovery.Discoverer, error) {
		d, err := inner(ns)
		if err != nil {
			return nil, err
		}
		announcer, err := inner(ns)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { announcer.Close(context.Background()) })
		return lingering{Discoverer: d, announcer: announcer, got: func(a discovery.Announcement) {
			mu.Lock()
			defer mu.Unlock()
			anns = append(anns, a)
		}}, nil
	}
	leave = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range anns {
			a.Leave(context.Background())
		}
	}
	return open, leave
}

type lingering struct {
	discovery.Discoverer
	announcer discovery.Discoverer
	got       func(discovery.Announcement)
}

func (l lingering) Announce(ctx context.Context, rec discovery.Record) (discovery.Announcement, error) {
	a, err := l.announcer.Announce(context.WithoutCancel(ctx), rec)
	if err != nil {
		return nil, err
	}
	l.got(a)
	return stuckAnnouncement{a}, nil
}

// stuckAnnouncement ignores Leave: the record stays listed.
type stuckAnnouncement struct{ discovery.Announcement }

func (stuckAnnouncement) Leave(context.Context) error { return nil }

// stepFor fires a chat's connector timers as they come for about d of
// real time: its redials, if it makes any.
func stepFor(clock *clockwork.FakeClock, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if clock.BlockUntilContext(ctx, 1) == nil {
			clock.Advance(time.Minute)
		}
		cancel()
	}
}

// TestDeadMemberOneLine: a member whose host dies (closed, no goodbye)
// while discovery still lists it gets one status line, "lost contact,
// retrying quietly", however many redials fail; when it comes back (a
// new chat with its key, at its address), one line says so.
func TestDeadMemberOneLine(t *testing.T) {
	key := newKey(t)
	hb := keyedHost(t, key, "/ip4/127.0.0.1/tcp/0")
	swap := fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory()))
	clock := clockwork.NewFakeClock()
	var mon *chat.Monitor
	alice := start(t, testConfig("alice"), swap, fakeClock(clock, &mon))
	bob := start(t, testConfig("bob"), swap, withHost(hb))
	meet(t, alice, bob)
	alice.status.wait(t, "alice's status", line(`^-- connected to %s `, who(bob)))

	mark := len(alice.status.String())
	addr := hb.Addrs()[0].String()
	hb.Close() // bob dies; his chat goes on announcing him
	alice.status.wait(t, "alice's status", line(`^-- lost contact with bob, retrying quietly$`))
	const dials = 6
	redial(t, clock, mon, hb.ID(), dials)
	about := line(`bob|%s`, regexp.QuoteMeta(shortID(bob)))
	if got := alice.status.String()[mark:]; countLines(got, about) != 1 {
		t.Errorf("after bob died and %d dials to him failed, alice printed:\n%s\nwant one line about him", mon.Link(hb.ID()).FailedDials, got)
	}

	// bob is back: another chat with his key at his address, which
	// alice's redials reach.
	mark = len(alice.status.String())
	hb2 := keyedHost(t, key, addr)
	start(t, testConfig("bob"), fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())), withHost(hb2))
	reached := line(`^-- connected to bob \(we dialed, direct\); reachable after \d+ failed dials$`)
	stepUntil(t, clock, func() bool { return countLines(alice.status.String(), reached) > 0 })
	alice.wait("alice", line(`^\* bob joined \(%s\)$`, hb.ID()))
	time.Sleep(time.Second) // time enough for a line too many
	if got := alice.status.String()[mark:]; countLines(got, about) != 1 {
		t.Errorf("after bob came back, alice printed:\n%s\nwant one line about him", got)
	}
}

// TestNoRedialAfterGoodbye: a member that said goodbye (/quit) is not
// dialed again, though discovery goes on listing it for a while, as the
// slot rendezvous does until it reads the tombstone; its departure gets
// one status line. Once discovery lists it again with a new session, it
// is dialed.
func TestNoRedialAfterGoodbye(t *testing.T) {
	m := discovery.NewMemory()
	counter := newDialCounter()
	ha := newHost(t, libp2p.ConnectionGater(counter))
	key := newKey(t)
	hb := keyedHost(t, key, "/ip4/127.0.0.1/tcp/0")
	clock := clockwork.NewFakeClock()
	var mon *chat.Monitor
	alice := start(t, testConfig("alice"), fx.Replace(libp2padapter.MemoryOpener(m)), withHost(ha), fakeClock(clock, &mon))
	open, leave := lingeringOpener(t, m)
	bob := start(t, testConfig("bob"), fx.Replace(open), withHost(hb))
	meet(t, alice, bob)

	mark := len(alice.status.String())
	bob.quit() // his goodbye
	hb.Close() // the chat closes only a host it made
	alice.wait("alice", line(`^\* bob left$`))
	alice.status.wait(t, "alice's status", line(`^-- disconnected from bob$`))
	before := counter.count(hb.ID())
	stepFor(clock, 3*time.Second)
	if n := counter.count(hb.ID()) - before; n != 0 {
		t.Errorf("alice dialed bob %d times after his goodbye, want none", n)
	}
	if f, ok := mon.FoundPeer(hb.ID()); !ok || f.Lost {
		t.Fatalf("discovery no longer lists bob (%+v, %v): the test proves nothing", f, ok)
	}
	about := line(`bob|%s`, regexp.QuoteMeta(shortID(bob)))
	if got := alice.status.String()[mark:]; countLines(got, about) != 1 {
		t.Errorf("after bob's goodbye alice printed:\n%s\nwant one line about him", got)
	}

	// bob's old listing goes and a new session of his comes: alice dials
	// it (it dials nobody: its gater refuses).
	leave()
	bobGate := newDialCounter()
	bobGate.refuse[ha.ID()] = true
	hb2 := keyedHost(t, key, "/ip4/127.0.0.1/tcp/0", libp2p.ConnectionGater(bobGate))
	bob2 := start(t, testConfig("bob"), fx.Replace(libp2padapter.MemoryOpener(m)), withHost(hb2))
	stepUntil(t, clock, func() bool { return ha.Network().Connectedness(hb2.ID()) == network.Connected })
	if counter.count(hb.ID()) == before {
		t.Error("connected to bob's new session without dialing it")
	}
	meet(t, alice, bob2)
}
