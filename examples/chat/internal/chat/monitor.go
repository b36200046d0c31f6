package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// slotPoll is how often the monitor asks which slot this peer holds: a map
// lookup under the discoverer's lock, no request.
const slotPoll = 250 * time.Millisecond

// Monitor prints what discovery and libp2p are doing while the room
// fills: the slot this peer's record holds, each peer found or lost (and
// through which mechanism), each link made, changed or lost, and members
// found but unreachable. It remembers how each peer was found and what
// became of the dials to it, for /peers.
//
// It says each thing once: a member that cannot be reached gets one line
// with the reason, not one per redial, and one line when it is reached
// after all; a member whose connection is lost gets "lost contact,
// retrying quietly", and the redials say nothing more.
type Monitor struct {
	h       host.Host
	a       *libp2padapter.Adapter
	slots   *Slots
	con     *Console
	punches *HolePunches
	public  PublicAddrFunc
	ns      string
	mode    Mode

	start   time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	notifee *network.NotifyBundle

	// dirty holds the peers whose connections or punches changed since
	// the watcher last looked; changed wakes it. Kept apart from mu: the
	// swarm calls the notifiee while holding locks of its own, and the
	// watcher asks the swarm for connections.
	dmu     sync.Mutex
	dirty   map[peer.ID]struct{}
	changed chan struct{}

	// nicks names members in status lines (the room sets it); it is
	// asked before mu is taken, since the room holds its own lock when
	// it calls the monitor.
	nicks atomic.Pointer[func(peer.ID) string]

	mu    sync.Mutex
	found map[peer.ID]Found
	live  int // peers found and not lost
	links map[peer.ID]*linkState
}

// linkState is what the monitor has said about the link to one peer.
type linkState struct {
	shown    link   // the link the last status line told
	failures int    // dials failed since the last connection
	reason   string // why the dials fail, in the user's terms
	// quiet: a line said it cannot be reached, or that contact was lost;
	// failed redials say nothing more until it is reached.
	quiet bool
	// left: it said goodbye; a redial failing is no news.
	left      bool
	toldPunch int // punches reported, of punchState.successes
}

// Found is how discovery found a peer.
type Found struct {
	// Via names the mechanisms that know the peer ("slots", "mdns",
	// "memory").
	Via []string
	// After is how long after joining it was first found.
	After time.Duration
	// Lost is set once discovery lost it again.
	Lost bool
}

// PeerLink is the link to a peer as /peers shows it.
type PeerLink struct {
	// Kind is direct, relayed or not connected.
	Kind LinkKind
	// Relay is the relay of a Relayed link (empty if its address names
	// none).
	Relay peer.ID
	// HolePunched: the Direct link came from a hole punch (HolePunches).
	HolePunched bool
	// PunchFailed is why the last hole punch failed, if it did.
	PunchFailed string
	// Opened is when the connection standing for the link opened, and
	// Outbound whether this peer dialed it.
	Opened   time.Time
	Outbound bool
	// FailedDials counts the dials that failed since the last connection,
	// and Reason says why (NotConnected only).
	FailedDials int
	Reason      string
}

// pubsubNamespace is the namespace pubsub's discovery asks the adapter
// about for a topic.
func pubsubNamespace(topic string) string { return "floodsub:" + topic }

// monitorIn is what the monitor is built from. PublicAddrFunc is
// optional: without one, manet.IsPublicAddr decides.
type monitorIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    Config
	Host      host.Host
	Adapter   *libp2padapter.Adapter
	Slots     *Slots
	Group     *slotdiscovery.Group
	Console   *Console
	Punches   *HolePunches
	Public    PublicAddrFunc `optional:"true"`
}

func newMonitor(in monitorIn) *Monitor {
	m := &Monitor{
		h: in.Host, a: in.Adapter, slots: in.Slots, con: in.Console, punches: in.Punches, public: in.Public,
		ns: pubsubNamespace(TopicName(in.Group)), mode: in.Config.Mode,
		dirty: make(map[peer.ID]struct{}), changed: make(chan struct{}, 1),
		found: make(map[peer.ID]Found), links: make(map[peer.ID]*linkState),
	}
	if m.public == nil {
		m.public = manet.IsPublicAddr
	}
	in.Lifecycle.Append(fx.Hook{OnStart: m.run, OnStop: m.stop})
	return m
}

func (m *Monitor) run(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	// Subscribing opens the room's namespace in the adapter (pubsub would
	// open it on joining anyway), so a discoverer that cannot start, such
	// as mDNS without a multicast interface, fails the start here with its
	// reason rather than somewhere inside pubsub.
	events, err := m.a.Subscriber(m.ns).Subscribe(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("starting discovery: %w", err)
	}
	m.start, m.cancel = time.Now(), cancel
	// Every connection, not only changes of connectedness: a relayed
	// link that turns direct by a hole punch changes no connectedness
	// when the relay grants unlimited circuits.
	touch := func(_ network.Network, c network.Conn) { m.touch(c.RemotePeer()) }
	m.notifee = &network.NotifyBundle{ConnectedF: touch, DisconnectedF: touch}
	m.h.Network().Notify(m.notifee)
	m.punches.watch(m.touch)
	m.con.Statusf("looking for the room through %s", m.mode)
	m.wg.Add(2)
	go m.watchDiscovery(ctx, events)
	go m.watchLinks(ctx)
	return nil
}

func (m *Monitor) stop(context.Context) error {
	if m.cancel != nil {
		m.h.Network().StopNotify(m.notifee)
		m.punches.watch(nil)
		m.cancel()
		m.wg.Wait()
	}
	return nil
}

func (m *Monitor) watchDiscovery(ctx context.Context, events <-chan discovery.Event) {
	defer m.wg.Done()
	self := m.h.ID().String()
	tick := time.NewTicker(slotPoll)
	defer tick.Stop()
	shown := -1
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			m.note(e)
		case <-tick.C:
			// Reported when first confirmed and again only if the
			// record moves to another slot.
			if s := m.slots.Slot(m.ns, self); s >= 0 && s != shown {
				shown = s
				m.con.Statusf("announced in slot %d", s)
			}
		case <-ctx.Done():
			return
		}
	}
}

func (m *Monitor) note(e discovery.Event) {
	id, err := peer.Decode(e.Peer.ID)
	if err != nil {
		return // not a libp2p peer; the adapter ignores it too
	}
	via := strings.Join(e.Peer.Sources, "+")
	name := m.name(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	f, known := m.found[id]
	switch e.Type {
	case discovery.Found:
		if !known || f.Lost {
			f = Found{After: time.Since(m.start)}
		}
		f.Via, f.Lost = slices.Clone(e.Peer.Sources), false
		m.found[id] = f
		m.live++
		m.con.Statusf("found %s via %s: %d %s in %s", name, via, m.live, plural(m.live, "peer"), roundDuration(time.Since(m.start)))
	case discovery.Updated:
		f.Via = slices.Clone(e.Peer.Sources)
		m.found[id] = f
	case discovery.Lost:
		if known && !f.Lost {
			f.Lost = true
			m.found[id] = f
			m.live--
			m.con.Statusf("lost %s via %s", name, via)
		}
	}
}

// setNicks makes status lines name members by nick: nick returns a
// member's nick as the room shows it, or "" if it has none yet.
func (m *Monitor) setNicks(nick func(peer.ID) string) { m.nicks.Store(&nick) }

// name is how status lines show p: its nick once the room knows it,
// else the end of its ID. Never called under mu (see nicks).
func (m *Monitor) name(p peer.ID) string {
	if f := m.nicks.Load(); f != nil {
		if n := (*f)(p); n != "" {
			return n
		}
	}
	return shortID(p)
}

// touch marks p's link for a look; it never blocks.
func (m *Monitor) touch(p peer.ID) {
	m.dmu.Lock()
	m.dirty[p] = struct{}{}
	m.dmu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *Monitor) watchLinks(ctx context.Context) {
	defer m.wg.Done()
	for {
		select {
		case <-m.changed:
			m.dmu.Lock()
			dirty := m.dirty
			m.dirty = make(map[peer.ID]struct{})
			m.dmu.Unlock()
			for p := range dirty {
				m.update(p)
			}
		case <-ctx.Done():
			return
		}
	}
}

// update compares the link to p with the one last told, and tells what
// changed, in one line.
func (m *Monitor) update(p peer.ID) {
	now := linkTo(m.h, p) // asks the swarm: not under mu
	punch := m.punches.get(p)
	name := m.name(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.linkLocked(p)
	prev := st.shown
	newPunch := now.kind == Direct && punch.successes > st.toldPunch
	switch {
	case now.kind == prev.kind && !newPunch:
		// The same kind of link; another relay, or another connection
		// of the same kind, is not worth a line.
	case now.kind == NotConnected:
		m.punches.forget(p)
		st.toldPunch = 0
		f, found := m.found[p]
		if st.left || !found || f.Lost {
			m.con.Statusf("disconnected from %s", name)
		} else {
			// The connector redials a member it still knows of; say so
			// once, and nothing per redial.
			m.con.Statusf("lost contact with %s, retrying quietly", name)
			st.quiet, st.failures, st.reason = true, 0, ""
		}
		if !found {
			delete(m.links, p) // a relay or a stranger: nothing to keep
			return
		}
	case prev.kind == NotConnected:
		msg := fmt.Sprintf("connected to %s (%s, %s)", name, dialedBy(now.conn), now.describe())
		switch {
		case st.quiet && st.failures > 0:
			msg += fmt.Sprintf("; reachable after %d failed %s", st.failures, plural(st.failures, "dial"))
		case st.quiet:
			msg += "; back in contact"
		}
		m.con.Statusf("%s", msg)
		st.quiet, st.failures, st.reason, st.left = false, 0, "", false
		st.toldPunch = punch.successes
	case now.kind == Direct:
		if punch.active {
			// Turned direct during a punch: told when the punch ends,
			// as its result.
			return
		}
		if newPunch {
			m.con.Statusf("direct link to %s: hole punched in %s", name, roundDuration(punch.took))
			st.toldPunch = punch.successes
		} else {
			m.con.Statusf("direct link to %s (%s)", name, dialedBy(now.conn))
		}
	default: // direct to relayed
		m.con.Statusf("direct link to %s closed; still %s", name, now.describe())
	}
	st.shown = now
}

// dialed hears of every dial the room's connector makes (ConnectNotify).
// A failure counts, and the first one since the peer was last connected
// gets a status line with the reason; the others are quiet.
func (m *Monitor) dialed(e libp2padapter.ConnectEvent) {
	if e.Type != libp2padapter.Failed {
		return
	}
	p := e.Peer.ID
	if linkTo(m.h, p).kind != NotConnected {
		return // a link exists all the same (the other side dialed)
	}
	ours := m.h.Addrs()
	name := m.name(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.linkLocked(p)
	st.failures++
	// libp2p refuses to redial an address that just failed: the reason
	// of the failure before says more than "dial backoff".
	if st.reason == "" || !errors.Is(e.Err, swarm.ErrDialBackoff) {
		st.reason = unreachableReason(e.Peer.Addrs, ours, m.public, e.Err)
	}
	if st.quiet || st.left || e.RetryIn <= 0 {
		// Told already; or gone (a goodbye, or discovery lost it, which
		// has its own line): no redial follows.
		return
	}
	st.quiet = true
	m.con.Statusf("cannot reach %s: %s; retrying quietly", name, st.reason)
}

// noteGoodbye records that p said goodbye: its connection closing is no
// loss, and failed redials are no news.
func (m *Monitor) noteGoodbye(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.linkLocked(p).left = true
}

func (m *Monitor) linkLocked(p peer.ID) *linkState {
	st := m.links[p]
	if st == nil {
		st = new(linkState)
		m.links[p] = st
	}
	return st
}

// Link returns the link to p as it is now, with what the dials to it and
// the punches say.
func (m *Monitor) Link(p peer.ID) PeerLink {
	l := linkTo(m.h, p)
	punch := m.punches.get(p)
	out := PeerLink{Kind: l.kind, Relay: l.relay, PunchFailed: punch.failure}
	if l.conn != nil {
		out.Opened, out.Outbound = l.conn.Stat().Opened, l.conn.Stat().Direction == network.DirOutbound
	}
	out.HolePunched = l.kind == Direct && punch.successes > 0
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.links[p]; st != nil && l.kind == NotConnected {
		out.FailedDials, out.Reason = st.failures, st.reason
	}
	return out
}

// isMember reports whether discovery has found p in the room's namespace:
// its record, signed with its key, was in the rendezvous only those with
// the passphrase can read.
func (m *Monitor) isMember(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.found[p]
	return ok
}

// isListed reports whether discovery lists p now: found, and not lost
// since.
func (m *Monitor) isListed(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.found[p]
	return ok && !f.Lost
}

// FoundPeer returns how discovery found id, if it did.
func (m *Monitor) FoundPeer(id peer.ID) (Found, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.found[id]
	return f, ok
}

// FoundPeers returns every peer discovery has found, lost ones included.
func (m *Monitor) FoundPeers() []peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.ID, 0, len(m.found))
	for id := range m.found {
		out = append(out, id)
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
