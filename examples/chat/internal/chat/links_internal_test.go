package chat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
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
		{"we are public", home1, public, manet.IsPublicAddr, "it is behind NAT with no relay: waiting for it to reach us"},
		{"they are public", public, home2, manet.IsPublicAddr, "all dials failed: connection refused"},
		{"one machine", loopback, loopback, manet.IsPublicAddr, "all dials failed: connection refused"},
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
