package connectivity

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Why a member on our own network is dialed directly first.
//
// go-libp2p's dial ranker delays relay addresses (by swarm.RelayDelay,
// 500 ms) only when the peer has a public address. A member behind NAT has
// private addresses and a relay circuit, so both are dialed at once; two
// members behind the same router then race their LAN against the relay,
// and the relay sometimes wins (seen in the namespace lab: 1 run in 10,
// relayed for 10 s until a hole punch found the LAN). rankDials delays the
// relay as go-libp2p would for a public address when the peer has an
// address on one of this host's own networks. The cost: a member of
// another home network that happens to use the same private range (many
// routers use 192.168.1.0/24) is reached through the relay 500 ms later.

// ownNetworksTTL is how long the list of this host's networks is reused.
const ownNetworksTTL = 10 * time.Second

// ownNetworks caches the networks of this host's interfaces.
type ownNetworks struct {
	mu      sync.Mutex
	read    func() ([]netip.Prefix, error) // interfaceNetworks; tests swap it
	nets    []netip.Prefix
	fetched time.Time
}

// interfaceNetworks returns the networks of this host's interfaces, with
// their masks (go-multiaddr's interface addresses have none).
func interfaceNetworks() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		bits, _ := ipn.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && bits > 32 {
			bits -= 96
		}
		if p, err := ip.Prefix(bits); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// get returns the networks, read again once ownNetworksTTL has passed.
func (o *ownNetworks) get(now time.Time) []netip.Prefix {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fetched.IsZero() || now.Sub(o.fetched) >= ownNetworksTTL {
		if nets, err := o.read(); err == nil {
			o.nets = nets
		}
		o.fetched = now
	}
	return o.nets
}

// rankDials is swarm.DefaultDialRanker, with relay addresses delayed by
// swarm.RelayDelay when the peer has a direct address on one of this
// host's networks (and no public one: then go-libp2p delays them already).
func (c *Manager) rankDials(addrs []ma.Multiaddr) []network.AddrDelay {
	ranked := swarm.DefaultDialRanker(addrs)
	if slices.ContainsFunc(addrs, rankedPublic) || !c.onOwnNetwork(addrs) {
		return ranked
	}
	for i := range ranked {
		if isCircuit(ranked[i].Addr) {
			ranked[i].Delay += swarm.RelayDelay
		}
	}
	return ranked
}

// rankedPublic reports whether go-libp2p's ranker takes a for a public
// address (for which it delays relay dials itself): a direct IP address
// outside its private ranges, documentation ranges included.
func rankedPublic(a ma.Multiaddr) bool {
	if isCircuit(a) {
		return false
	}
	if _, err := manet.ToIP(a); err != nil {
		return false
	}
	return !manet.IsPrivateAddr(a)
}

// onOwnNetwork reports whether a direct address among addrs is on one of
// this host's networks.
func (c *Manager) onOwnNetwork(addrs []ma.Multiaddr) bool {
	var nets []netip.Prefix
	for _, a := range addrs {
		if isCircuit(a) {
			continue
		}
		ip, err := manet.ToIP(a)
		if err != nil {
			continue
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		if nets == nil {
			nets = c.own.get(c.cfg.clock.Now())
		}
		for _, n := range nets {
			if n.Contains(addr.Unmap()) {
				return true
			}
		}
	}
	return false
}
