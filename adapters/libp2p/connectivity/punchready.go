package connectivity

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// Why relayed connections wait for hole punching.
//
// go-libp2p's hole punching (DCUtR) starts only once the host knows an
// address of its own that others see (one observer suffices: the relay),
// polled from 250 ms after start with a growing interval. Until then the
// host neither serves /libp2p/dcutr nor watches connections, and it never
// looks back: a relayed connection made before stays relayed for its whole
// life, though the NATs would let a punch through. Members that find each
// other in tens of milliseconds through the rendezvous connect through the
// relay well before that. So a relayed connection, either way, is held
// after its handshake until this host's hole punching is ready, for at
// most WithPunchWait from the host's start: then, whichever side receives it,
// the receiver punches and the dialer answers.

// DefaultPunchWait is how long after the host's start a relayed connection
// may be held for hole punching to be ready (WithPunchWait).
//
// It stays under identify's 5 s timeout: the other side identifies over
// the connection while this side holds it. go-libp2p's readiness poll runs
// at 0.25, 0.75, 1.75 and 3.75 s after start, then every 5 s.
const DefaultPunchWait = 4 * time.Second

// WithPunchWait sets how long after the host's start a relayed connection,
// inbound or outbound, may be held until the host's hole punching is
// ready (default DefaultPunchWait); 0 holds none, and a connection made
// before hole punching is ready then stays relayed.
func WithPunchWait(d time.Duration) Option {
	return func(c *connConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: negative punch wait %v", ErrInvalidOption, d)
		}
		c.punchWait = d
		return nil
	}
}

// WithConnectionGater makes the host consult g too. Options installs a
// connection gater of its own (it holds relayed connections, see
// WithPunchWait), and go-libp2p takes one per host: give yours here rather
// than with libp2p.ConnectionGater. g is asked after the Manager's
// own rule, for every connection.
func WithConnectionGater(g connmgr.ConnectionGater) Option {
	return func(c *connConfig) error {
		if g == nil {
			return fmt.Errorf("%w: nil connection gater", ErrInvalidOption)
		}
		c.gater = g
		return nil
	}
}

// punchGate is the Manager's connection gater.
type punchGate struct{ c *Manager }

var _ connmgr.ConnectionGater = punchGate{}

func (g punchGate) InterceptPeerDial(p peer.ID) bool {
	return g.c.cfg.gater == nil || g.c.cfg.gater.InterceptPeerDial(p)
}

func (g punchGate) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return g.c.cfg.gater == nil || g.c.cfg.gater.InterceptAddrDial(p, a)
}

func (g punchGate) InterceptAccept(a network.ConnMultiaddrs) bool {
	return g.c.cfg.gater == nil || g.c.cfg.gater.InterceptAccept(a)
}

// InterceptSecured holds a relayed connection until hole punching is
// ready. It runs after the handshake, in the connection's own upgrade,
// so the host's other dials and connections go on meanwhile.
func (g punchGate) InterceptSecured(dir network.Direction, p peer.ID, a network.ConnMultiaddrs) bool {
	if g.c.cfg.gater != nil && !g.c.cfg.gater.InterceptSecured(dir, p, a) {
		return false // refused: nothing to hold
	}
	if isCircuit(a.RemoteMultiaddr()) {
		g.c.awaitHolePunching(p)
	}
	return true
}

func (g punchGate) InterceptUpgraded(conn network.Conn) (bool, control.DisconnectReason) {
	if g.c.cfg.gater == nil {
		return true, 0
	}
	return g.c.cfg.gater.InterceptUpgraded(conn)
}

// awaitHolePunching returns once the host's hole punching is ready, the
// hold's deadline has passed, or the host stops.
func (c *Manager) awaitHolePunching(p peer.ID) {
	c.mu.Lock()
	ready, until, ctx := c.punchReady, c.holdUntil, c.ctx
	c.mu.Unlock()
	select {
	case <-ready:
		return
	default:
	}
	d := until.Sub(c.cfg.clock.Now())
	if d <= 0 { // past the deadline, or nothing held (WithPunchWait 0, not started)
		return
	}
	c.cfg.logger.Debug("relayed connection held until hole punching is ready", "peer", p, "at most", d)
	t := c.cfg.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.Chan():
	case <-ctx.Done():
	}
}

// punchSettle is how long after the host starts serving DCUtR hole
// punching counts as ready. go-libp2p sets the handler, then (in the same
// goroutine, a moment later) starts watching for new connections; a
// connection released in between would never be punched. That moment is
// microseconds, but was seen to be missed on a loaded machine (1 run in
// 30 of TestRelayedConnectionWaitsForPunching, 10 at once on 2 cores).
const punchSettle = 50 * time.Millisecond

// notePunching marks hole punching ready, punchSettle after the host
// serves DCUtR.
func (c *Manager) notePunching(protocols []protocol.ID) {
	if !slices.Contains(protocols, holepunch.Protocol) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.punchNoted {
		return
	}
	c.punchNoted = true
	ready := c.punchReady
	// Real time, whatever cfg.clock is: this waits for a goroutine, not
	// for a deadline, and a test's frozen clock must not stop it.
	c.settleClock.AfterFunc(punchSettle, func() {
		close(ready)
		c.cfg.logger.Debug("hole punching ready")
	})
}
