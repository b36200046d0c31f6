package mdnsdiscovery

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/libp2p/zeroconf/v2"
)

// ErrNoInterface is returned by New when no network interface can carry
// mDNS: none is up with the MULTICAST flag (a network namespace with only
// loopback, where `ip link set lo multicast on` helps), or joining the
// mDNS group failed on every one. Tests that need mDNS skip on it.
var ErrNoInterface = errors.New("mdnsdiscovery: no up, multicast-capable network interface")

// The mDNS groups (RFC 6762 §3).
var (
	mdnsGroup4 = net.IPv4(224, 0, 0, 251)
	mdnsGroup6 = net.ParseIP("ff02::fb")
)

// interfaces returns the interfaces to use now: the configured ones, or
// all, that are up and multicast-capable. zeroconf applies the same rule
// when given none; listing them here lets the server and the browser use
// the same set and lets New tell an empty set apart.
func interfaces(names []string) ([]net.Interface, error) {
	var all []net.Interface
	if len(names) == 0 {
		var err error
		if all, err = net.Interfaces(); err != nil {
			return nil, fmt.Errorf("%w: listing interfaces: %v", ErrNoInterface, err)
		}
	} else {
		for _, n := range names {
			if ifi, err := net.InterfaceByName(n); err == nil {
				all = append(all, *ifi)
			}
		}
	}
	var out []net.Interface
	var skipped []string
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 {
			out = append(out, ifi)
		} else {
			skipped = append(skipped, ifi.Name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w (considered: %s)", ErrNoInterface, orNone(skipped, names))
	}
	return out, nil
}

func orNone(skipped, names []string) string {
	if len(skipped) == 0 {
		if len(names) > 0 {
			return "none of " + strings.Join(names, ", ") + " exists"
		}
		return "none"
	}
	return strings.Join(skipped, ", ")
}

// ipTraffic finds which IP versions can join the mDNS group on ifaces,
// by joining it on a throwaway socket, and returns the zeroconf setting
// that uses them. zeroconf's browser fails outright when one version
// cannot join (its server only logs and carries on), so a host without
// IPv6 must browse IPv4 only.
func ipTraffic(ifaces []net.Interface) (zeroconf.IPType, error) {
	var t zeroconf.IPType
	for i := range ifaces {
		if t&zeroconf.IPv4 == 0 && canJoin("udp4", &ifaces[i], mdnsGroup4) {
			t |= zeroconf.IPv4
		}
		if t&zeroconf.IPv6 == 0 && canJoin("udp6", &ifaces[i], mdnsGroup6) {
			t |= zeroconf.IPv6
		}
	}
	if t == 0 {
		names := make([]string, len(ifaces))
		for i, ifi := range ifaces {
			names[i] = ifi.Name
		}
		return 0, fmt.Errorf("%w: cannot join the mDNS group on %s", ErrNoInterface, strings.Join(names, ", "))
	}
	return t, nil
}

// maxHostIPs bounds the A and AAAA records of an answer, keeping it
// within one packet (TestLargestRecordFitsOnePacket counts three).
const maxHostIPs = 3

// hostIPs returns an address of each interface, at most maxHostIPs, for
// the A and AAAA records zeroconf's browser insists on (it drops an
// instance without one). Peers use Record.Addrs, not these. zeroconf
// could derive them per interface by itself, but it skips loopback
// addresses, so on a host whose only multicast interface is loopback
// (a network namespace after `ip link set lo multicast on`) its answers
// would carry none and nobody would ever be found.
func hostIPs(ifaces []net.Interface) []string {
	var ips []string
	for i := range ifaces {
		if ip := interfaceIP(&ifaces[i]); ip != nil {
			ips = append(ips, ip.String())
			if len(ips) == maxHostIPs {
				break
			}
		}
	}
	return ips
}

// interfaceIP picks ifi's address to show: IPv4 first, then a global
// IPv6 address, then any.
func interfaceIP(ifi *net.Interface) net.IP {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var v6, other net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		switch ip := ipn.IP; {
		case ip.To4() != nil:
			return ip
		case ip.IsGlobalUnicast() && v6 == nil:
			v6 = ip
		case other == nil:
			other = ip
		}
	}
	if v6 != nil {
		return v6
	}
	return other
}

// canJoin reports whether a socket can join group on ifi. Port 0, so the
// check never competes with a real mDNS socket.
func canJoin(network string, ifi *net.Interface, group net.IP) bool {
	c, err := net.ListenMulticastUDP(network, ifi, &net.UDPAddr{IP: group})
	if err != nil {
		return false
	}
	c.Close()
	return true
}
