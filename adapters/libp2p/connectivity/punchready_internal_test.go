package connectivity

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// The hold on relayed connections ends when hole punching is ready, or at
// WithPunchWait after the start, whichever comes first; with WithPunchWait 0, or
// before the host started, nothing is held.
func TestAwaitHolePunching(t *testing.T) {
	held := func(c *Manager, clock *clockwork.FakeClock, step time.Duration, ready bool) bool {
		t.Helper()
		done := make(chan struct{})
		go func() {
			c.awaitHolePunching("")
			close(done)
		}()
		if step > 0 {
			if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
			clock.Advance(step)
		}
		if ready {
			c.notePunching([]protocol.ID{"/other/1.0.0"})
			select {
			case <-done:
				t.Fatal("an unrelated protocol ended the hold")
			case <-time.After(50 * time.Millisecond):
			}
			c.notePunching([]protocol.ID{"/other/1.0.0", holepunch.Protocol})
		}
		select {
		case <-done:
			return false
		case <-time.After(200 * time.Millisecond):
			return true
		}
	}
	newConn := func(wait time.Duration) (*Manager, *clockwork.FakeClock) {
		clock := clockwork.NewFakeClock()
		c, err := New(WithClock(clock), WithPunchWait(wait))
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.ctx = t.Context()
		if wait > 0 {
			c.holdUntil = clock.Now().Add(wait)
		}
		c.mu.Unlock()
		return c, clock
	}

	c, clock := newConn(5 * time.Second)
	if !held(c, clock, 4*time.Second, false) {
		t.Error("released before the deadline, hole punching not ready")
	}
	c, clock = newConn(5 * time.Second)
	if held(c, clock, 5*time.Second, false) {
		t.Error("still held at the deadline")
	}
	c, clock = newConn(5 * time.Second)
	if held(c, clock, 0, true) {
		t.Error("still held once hole punching is ready")
	}
	if held(c, clock, 0, false) {
		t.Error("held after hole punching became ready")
	}
	c, clock = newConn(0)
	if held(c, clock, 0, false) {
		t.Error("held with WithPunchWait 0")
	}
	if _, err := New(WithPunchWait(-time.Second)); err == nil {
		t.Error("a negative WithPunchWait accepted")
	}
}

// Hole punching counts as ready punchSettle after the host starts serving
// DCUtR, not before (go-libp2p starts watching connections a moment after
// it sets the handler), and the settle is counted from that readiness, not
// from the host's start: a host that took a second to get its first
// observed address still waits the settle out. The settle runs on its own
// clock (real time in use, since it waits for a goroutine rather than a
// deadline), faked here; the hold's deadline is an hour away.
func TestPunchSettle(t *testing.T) {
	clock, settle := clockwork.NewFakeClock(), clockwork.NewFakeClock()
	c, err := New(WithClock(clock), WithPunchWait(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c.settleClock = settle
	c.mu.Lock()
	c.ctx, c.holdUntil = t.Context(), clock.Now().Add(time.Hour)
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		c.awaitHolePunching("")
		close(done)
	}()
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	// The host has run for a second, several settles, before it serves
	// DCUtR.
	clock.Advance(time.Second)
	settle.Advance(time.Second)
	c.notePunching([]protocol.ID{holepunch.Protocol})
	settle.Advance(punchSettle - time.Nanosecond)
	select {
	case <-done:
		t.Fatalf("the hold ended %v after hole punching was ready, before the %v settle", punchSettle-time.Nanosecond, punchSettle)
	case <-time.After(200 * time.Millisecond):
	}
	settle.Advance(time.Nanosecond)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the hold did not end once the %v settle had passed after readiness", punchSettle)
	}
}

// refuseAll is a user's gater that refuses everything.
type refuseAll struct{}

func (refuseAll) InterceptPeerDial(peer.ID) bool                                  { return false }
func (refuseAll) InterceptAddrDial(peer.ID, ma.Multiaddr) bool                    { return false }
func (refuseAll) InterceptAccept(network.ConnMultiaddrs) bool                     { return false }
func (refuseAll) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return false, 0 }
func (refuseAll) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return false
}

// circuitConn is the addresses of a relayed connection.
type circuitConn struct{}

func (circuitConn) LocalMultiaddr() ma.Multiaddr { return ma.StringCast("/ip4/127.0.0.1/tcp/1") }
func (circuitConn) RemoteMultiaddr() ma.Multiaddr {
	return ma.StringCast("/ip4/198.51.100.2/tcp/4001/p2p/12D3KooWDQ7rB7wCnoCDfZw2uYAXUr39R8noWHnmatiL1n79AVnF/p2p-circuit")
}

// The user's gater is asked first: a relayed connection it refuses is
// refused at once, not held for hole punching first; one it lets through
// is held.
func TestGateAsksUserFirst(t *testing.T) {
	for _, refuse := range []bool{true, false} {
		clock := clockwork.NewFakeClock()
		opts := []Option{WithClock(clock)}
		if refuse {
			opts = append(opts, WithConnectionGater(refuseAll{}))
		}
		c, err := New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.ctx, c.holdUntil = t.Context(), clock.Now().Add(time.Hour)
		c.mu.Unlock()
		done := make(chan bool, 1)
		go func() { done <- punchGate{c}.InterceptSecured(network.DirInbound, "", circuitConn{}) }()
		select {
		case allowed := <-done:
			if !refuse || allowed {
				t.Errorf("user gater refusing %v: answered %v at once", refuse, allowed)
			}
		case <-time.After(200 * time.Millisecond):
			if refuse {
				t.Error("a connection the user's gater refuses was held")
			}
		}
	}
}
