package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// LinkKind is how this peer is connected to another, as /peers tells it.
type LinkKind uint8

// The link kinds.
const (
	// NotConnected: no connection at all.
	NotConnected LinkKind = iota
	// Relayed: only connections through a circuit relay. With the
	// relay's limits (Stat().Limited) pubsub will not use them; the room
	// then talks to the member over a stream of its own (relayed.go).
	Relayed
	// Direct: at least one connection that goes through no relay.
	Direct
)

// String returns "not connected", "relayed" or "direct", as /peers says.
func (k LinkKind) String() string {
	switch k {
	case Direct:
		return "direct"
	case Relayed:
		return "relayed"
	}
	return "not connected"
}

// link is what the connections to a peer amount to.
type link struct {
	kind  LinkKind
	relay peer.ID // the relay of a Relayed link
	conn  network.Conn
}

// linkTo looks at the connections to p. A connection through a circuit
// relay has /p2p-circuit in its remote address; a relay with unlimited
// circuits makes connections that are not Limited, so the address, not
// the flag, tells relayed from direct. Of several connections of the best
// kind, the oldest stands for the link.
func linkTo(h host.Host, p peer.ID) link {
	var best link
	for _, c := range h.Network().ConnsToPeer(p) {
		l := link{kind: Direct, conn: c}
		if relay, ok := circuitRelay(c.RemoteMultiaddr()); ok {
			l.kind, l.relay = Relayed, relay
		}
		if l.kind > best.kind || l.kind == best.kind && c.Stat().Opened.Before(best.conn.Stat().Opened) {
			best = l
		}
	}
	return best
}

// circuitRelay reports whether a goes through a circuit relay, and which:
// the /p2p/ component right before /p2p-circuit (empty if a names none).
func circuitRelay(a ma.Multiaddr) (peer.ID, bool) {
	var relay peer.ID
	for _, c := range a {
		switch c.Code() {
		case ma.P_P2P:
			if id, err := peer.IDFromBytes(c.RawValue()); err == nil {
				relay = id
			}
		case ma.P_CIRCUIT:
			return relay, true
		}
	}
	return "", false
}

// dialedBy says who opened c: "we dialed" or "they dialed".
func dialedBy(c network.Conn) string {
	if c.Stat().Direction == network.DirOutbound {
		return "we dialed"
	}
	return "they dialed"
}

// describe is how a status line names a link: "direct", "relayed through
// …abc123".
func (l link) describe() string {
	if l.kind == Relayed && l.relay != "" {
		return "relayed through " + shortID(l.relay)
	}
	return l.kind.String()
}

// PublicAddrFunc tells whether an address can be reached from the
// internet; the reasons a chat gives for an unreachable member rest on
// it. The default is go-multiaddr's manet.IsPublicAddr, which calls
// private, loopback and documentation ranges not public; a host given
// --public-cidr ranges should provide one that honours them (fx: provide
// a PublicAddrFunc).
type PublicAddrFunc func(ma.Multiaddr) bool

// unreachableReason says, in the user's terms, why the dials to a peer
// whose published addresses are theirs fail, given our own addresses.
// When it is behind NAT without a relay and we have neither a public
// address nor a relay, no dial either way can work and the error does
// not matter; otherwise the error says what went wrong.
func unreachableReason(theirs, ours []ma.Multiaddr, public PublicAddrFunc, err error) string {
	if len(theirs) == 0 {
		return "it published no address"
	}
	if nat, relayed := behindNAT(theirs, public); nat && !relayed {
		if _, ourRelay := behindNAT(ours, public); !slices.ContainsFunc(ours, public) && !ourRelay {
			return "both behind NAT and no relay known"
		}
		return "it is behind NAT with no relay: waiting for it to reach us"
	}
	return "all dials failed: " + shortDialError(err)
}

// behindNAT reports whether addrs name a host that only has private
// addresses (none public, and not only loopback ones: chats on one
// machine are not behind anything), and whether they include a relay.
func behindNAT(addrs []ma.Multiaddr, public PublicAddrFunc) (nat, relayed bool) {
	var pub bool
	var private int
	for _, a := range addrs {
		switch {
		case isCircuit(a):
			relayed = true
		case public(a):
			pub = true
		case !manet.IsIPLoopback(a):
			private++
		}
	}
	return !pub && private > 0, relayed
}

func isCircuit(a ma.Multiaddr) bool {
	_, ok := circuitRelay(a)
	return ok
}

// maxReason bounds a dial error as a status line shows it.
const maxReason = 160

// shortDialError is a dial error on one line: the distinct causes of a
// swarm's DialError, without its peer ID and addresses (a status line
// names the peer already), and without the newlines and tabs that made
// "�  * [/ip4/…]" of it.
func shortDialError(err error) string {
	var de *swarm.DialError
	switch {
	case err == nil:
		return "unknown error"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.As(err, &de):
		var causes []string
		for _, te := range de.DialErrors {
			if c := lastCause(te.Cause); c != "" && !slices.Contains(causes, c) {
				causes = append(causes, c)
			}
		}
		if len(causes) == 0 && de.Cause != nil {
			causes = append(causes, lastCause(de.Cause))
		}
		if len(causes) > 0 {
			s := strings.Join(causes, "; ")
			if n := len(de.DialErrors); n > 1 {
				s = fmt.Sprintf("%s (%d addresses)", s, n)
			}
			return oneLine(s)
		}
	}
	return oneLine(lastCause(err))
}

// lastCause is the end of a wrapped error's text, where the cause is:
// "dial tcp4 1.2.3.4:5: connect: connection refused" gives "connection
// refused".
func lastCause(err error) string {
	if err == nil {
		return ""
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	return s
}

// oneLine makes s fit a status line: whitespace runs (newlines included)
// become one space, then sanitize cuts it and disarms the rest.
func oneLine(s string) string {
	return sanitize(strings.Join(strings.Fields(s), " "), maxReason)
}
