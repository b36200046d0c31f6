package chat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// slotPoll is how often the monitor asks which slot this peer holds: a map
// lookup under the discoverer's lock, no request.
const slotPoll = 250 * time.Millisecond

// Monitor prints what discovery and libp2p are doing while the room
// fills: the slot this peer's record holds, each peer found or lost (and
// through which mechanism), each connection made or closed. It remembers
// how each peer was found, for /peers.
type Monitor struct {
	h     host.Host
	a     *libp2padapter.Adapter
	slots *Slots
	con   *Console
	ns    string
	mode  Mode

	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	found map[peer.ID]Found
	live  int // peers found and not lost
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

// pubsubNamespace is the namespace pubsub's discovery asks the adapter
// about for a topic.
func pubsubNamespace(topic string) string { return "floodsub:" + topic }

func newMonitor(lc fx.Lifecycle, cfg Config, h host.Host, a *libp2padapter.Adapter, slots *Slots, room *Room, con *Console) *Monitor {
	m := &Monitor{h: h, a: a, slots: slots, con: con, ns: pubsubNamespace(room.Topic()), mode: cfg.Mode, found: make(map[peer.ID]Found)}
	lc.Append(fx.Hook{OnStart: m.run, OnStop: m.stop})
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
	conns, err := m.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		cancel()
		return err
	}
	m.start, m.cancel = time.Now(), cancel
	m.con.Statusf("looking for the room through %s", m.mode)
	m.wg.Add(2)
	go m.watchDiscovery(ctx, events)
	go m.watchConns(ctx, conns)
	return nil
}

func (m *Monitor) stop(context.Context) error {
	if m.cancel != nil {
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
		m.con.Statusf("found %s via %s: %d %s in %s", shortID(id), via, m.live, plural(m.live, "peer"), roundDuration(time.Since(m.start)))
	case discovery.Updated:
		f.Via = slices.Clone(e.Peer.Sources)
		m.found[id] = f
	case discovery.Lost:
		if known && !f.Lost {
			f.Lost = true
			m.found[id] = f
			m.live--
			m.con.Statusf("lost %s via %s", shortID(id), via)
		}
	}
}

func (m *Monitor) watchConns(ctx context.Context, sub event.Subscription) {
	defer m.wg.Done()
	defer sub.Close()
	for {
		select {
		case ev, ok := <-sub.Out():
			if !ok {
				return
			}
			c := ev.(event.EvtPeerConnectednessChanged)
			switch c.Connectedness {
			case network.Connected:
				m.con.Statusf("connected to %s (%s)", shortID(c.Peer), direction(m.h, c.Peer))
			case network.NotConnected:
				m.con.Statusf("disconnected from %s", shortID(c.Peer))
			}
		case <-ctx.Done():
			return
		}
	}
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

// direction says who dialed: "we dialed" or "they dialed", by the oldest
// connection to p.
func direction(h host.Host, p peer.ID) string {
	c := oldestConn(h, p)
	if c == nil {
		return "gone again"
	}
	if c.Stat().Direction == network.DirOutbound {
		return "we dialed"
	}
	return "they dialed"
}

// oldestConn is the connection to p open the longest, or nil.
func oldestConn(h host.Host, p peer.ID) network.Conn {
	var oldest network.Conn
	for _, c := range h.Network().ConnsToPeer(p) {
		if oldest == nil || c.Stat().Opened.Before(oldest.Stat().Opened) {
			oldest = c
		}
	}
	return oldest
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
