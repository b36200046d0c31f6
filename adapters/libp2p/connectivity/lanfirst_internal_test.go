package connectivity

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// A member with an address on one of our networks is dialed there before
// its relay: the relay waits swarm.RelayDelay more than go-libp2p's own
// ranker says. A member elsewhere behind NAT gets go-libp2p's ranking.
func TestRankDialsLANFirst(t *testing.T) {
	clock := clockwork.NewFakeClock()
	c, err := New(WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	c.own.read = func() ([]netip.Prefix, error) {
		reads++
		return []netip.Prefix{netip.MustParsePrefix("10.11.0.0/24"), netip.MustParsePrefix("127.0.0.0/8")}, nil
	}
	const relay = "/ip4/198.51.100.2/udp/4001/quic-v1/p2p/12D3KooWDQ7rB7wCnoCDfZw2uYAXUr39R8noWHnmatiL1n79AVnF/p2p-circuit"
	delays := func(addrs ...string) map[string]time.Duration {
		var in []ma.Multiaddr
		for _, a := range addrs {
			in = append(in, ma.StringCast(a))
		}
		got := make(map[string]time.Duration)
		for _, d := range c.rankDials(in) {
			got[d.Addr.String()] = d.Delay
		}
		want := make(map[string]time.Duration)
		for _, d := range swarm.DefaultDialRanker(in) {
			want[d.Addr.String()] = d.Delay
		}
		for a := range want {
			if !isCircuit(ma.StringCast(a)) && got[a] != want[a] {
				t.Errorf("direct address %s delayed %v, go-libp2p says %v", a, got[a], want[a])
			}
		}
		got["default relay"] = want[relay]
		return got
	}
	same := delays("/ip4/10.11.0.3/udp/4001/quic-v1", relay)
	if same[relay] != same["default relay"]+swarm.RelayDelay {
		t.Errorf("member on our LAN: relay delayed %v, want %v", same[relay], same["default relay"]+swarm.RelayDelay)
	}
	other := delays("/ip4/10.12.0.2/udp/4001/quic-v1", relay)
	if other[relay] != other["default relay"] {
		t.Errorf("member on another LAN: relay delayed %v, want go-libp2p's %v", other[relay], other["default relay"])
	}
	// go-libp2p already delays the relay for a public address: once.
	public := delays("/ip4/10.11.0.3/udp/4001/quic-v1", "/ip4/203.0.113.7/udp/4001/quic-v1", relay)
	if public[relay] != public["default relay"] || public[relay] < swarm.RelayDelay {
		t.Errorf("member with a public address, on our LAN too: relay delayed %v, want go-libp2p's %v", public[relay], public["default relay"])
	}
	if reads != 1 {
		t.Errorf("our networks read %d times within their TTL, want 1", reads)
	}
	clock.Advance(ownNetworksTTL)
	c.own.read = func() ([]netip.Prefix, error) { reads++; return nil, errors.New("no interfaces") }
	delays("/ip4/10.11.0.3/udp/4001/quic-v1", relay)
	if reads != 2 {
		t.Errorf("our networks read %d times after their TTL, want 2", reads)
	}
	if kept := delays("/ip4/10.11.0.3/udp/4001/quic-v1", relay); kept[relay] == kept["default relay"] {
		t.Error("a failed read of our networks forgot the ones known")
	}
}

// interfaceNetworks gives the networks with their masks: loopback is
// among them on any machine.
func TestInterfaceNetworks(t *testing.T) {
	nets, err := interfaceNetworks()
	if err != nil {
		t.Skipf("no interface addresses here: %v", err)
	}
	for _, n := range nets {
		if n.Contains(netip.MustParseAddr("127.0.0.1")) && n.Bits() <= 32 && n.Addr().Is4() {
			return
		}
	}
	t.Errorf("127.0.0.1 is on none of %v", nets)
}
