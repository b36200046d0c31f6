package connectivity

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// publicMu serializes TreatAsPublic. It is the only package-level state
// of this package, and it exists because go-multiaddr's is: see
// TreatAsPublic.
var publicMu sync.Mutex

// ParsePublicCIDR parses a range given as "198.51.100.0/24" (or an IPv6
// prefix) for TreatAsPublic, refusing one with host bits set
// ("198.51.100.7/24"): such a typo usually means something else than the
// range it masks to.
func ParsePublicCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: public CIDR %q: %v", ErrInvalidOption, s, err)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%w: public CIDR %q has host bits set (the range is %s)", ErrInvalidOption, s, p.Masked())
	}
	return p, nil
}

// TreatAsPublic makes every address in the given ranges count as public
// (routable on the internet) to go-multiaddr's manet.IsPublicAddr, and so
// to go-libp2p: AutoNAT, AutoRelay, the relay service and hole punching
// all judge addresses with it. A deployment whose "internet" is a private
// range (a campus, a VPN in 10.0.0.0/8) needs it, and so does a test
// network in a documentation range (198.51.100.0/24, 203.0.113.0/24,
// 192.0.2.0/24), which go-multiaddr calls unroutable: there AutoRelay
// drops the relay's addresses, the relay strips its own from reservation
// replies, and hole punching finds no address to punch with.
//
// It changes process-wide state. go-multiaddr keeps its private and
// unroutable ranges in package variables (manet.Private4, Private6,
// Unroutable4, Unroutable6); TreatAsPublic removes the given ranges from
// them, splitting a listed range that only partly overlaps (making
// 10.1.0.0/16 public leaves the rest of 10.0.0.0/8 private). Every libp2p
// host in the process sees the change, and it lasts until the process
// ends. go-multiaddr reads those variables without a lock, so call it
// before starting any libp2p host (as WithPublicCIDRs does, from
// New, before the host exists). Calls are serialized with
// each other, and idempotent: ranges already public change nothing, and
// then nothing is written at all.
//
// IPv6 ranges can be made public only within 2000::/3, the global unicast
// space outside of which go-multiaddr never calls an IPv6 address public;
// other ranges are refused with ErrInvalidOption, as are invalid
// prefixes. On error, nothing has changed.
func TreatAsPublic(prefixes ...netip.Prefix) error {
	clean := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("%w: invalid public CIDR %v", ErrInvalidOption, p)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if p.Addr().Is6() && (!globalUnicast6.Contains(p.Addr()) || p.Bits() < globalUnicast6.Bits()) {
			return fmt.Errorf("%w: public CIDR %v: go-multiaddr counts IPv6 addresses as public only within %v", ErrInvalidOption, p, globalUnicast6)
		}
		clean = append(clean, p)
	}
	publicMu.Lock()
	defer publicMu.Unlock()
	for _, list := range []*[]*net.IPNet{&manet.Private4, &manet.Private6, &manet.Unroutable4, &manet.Unroutable6} {
		if next, changed := withoutRanges(*list, clean); changed {
			*list = next
		}
	}
	for _, p := range clean {
		for _, a := range []netip.Addr{p.Addr(), lastAddr(p)} {
			m, err := manet.FromIP(a.AsSlice())
			if err != nil || !manet.IsPublicAddr(m) {
				// Not reached for the ranges accepted above; kept so a
				// change in go-multiaddr's rules fails loudly, not
				// silently.
				return fmt.Errorf("connectivity: %v is still not public to go-multiaddr after TreatAsPublic(%v)", a, p)
			}
		}
	}
	return nil
}

// globalUnicast6 is go-multiaddr's (unexported) global unicast range: an
// IPv6 address outside it is never public to manet.IsPublicAddr.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// withoutRanges returns list minus every range in remove, and whether
// anything changed. list is not modified; when nothing changed it is
// returned as is.
func withoutRanges(list []*net.IPNet, remove []netip.Prefix) ([]*net.IPNet, bool) {
	changed := false
	out := make([]*net.IPNet, 0, len(list))
	for _, n := range list {
		p, ok := prefixOf(n)
		if !ok {
			out = append(out, n) // not ours to judge: keep it as it is
			continue
		}
		rest := []netip.Prefix{p}
		for _, r := range remove {
			var next []netip.Prefix
			for _, q := range rest {
				next = append(next, subtractPrefix(q, r)...)
			}
			rest = next
		}
		if len(rest) == 1 && rest[0] == p {
			out = append(out, n)
			continue
		}
		changed = true
		for _, q := range rest {
			out = append(out, ipNetOf(q))
		}
	}
	if !changed {
		return list, false
	}
	return slices.Clip(out), true
}

// subtractPrefix returns the addresses of n that are not in r, as a list
// of disjoint prefixes ordered by address: n itself if the two do not
// overlap, nothing if r covers n, and otherwise (r inside n) one prefix
// for every bit between their lengths.
func subtractPrefix(n, r netip.Prefix) []netip.Prefix {
	n, r = n.Masked(), r.Masked()
	if n.Addr().BitLen() != r.Addr().BitLen() || !n.Overlaps(r) {
		return []netip.Prefix{n}
	}
	if r.Bits() <= n.Bits() {
		return nil // r contains n
	}
	// r lies inside one half of n: keep the other half whole, and split
	// the half holding r further.
	lo, hi := halves(n)
	if lo.Contains(r.Addr()) {
		return append(subtractPrefix(lo, r), hi)
	}
	return append([]netip.Prefix{lo}, subtractPrefix(hi, r)...)
}

// halves splits p (not a single address) into its lower and upper halves.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
	bits := p.Bits()
	b := p.Addr().AsSlice()
	lo = netip.PrefixFrom(p.Addr(), bits+1)
	b[bits/8] |= 0x80 >> (bits % 8)
	a, _ := netip.AddrFromSlice(b)
	return lo, netip.PrefixFrom(a, bits+1)
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, size := n.Mask.Size()
	if size == 0 {
		return netip.Prefix{}, false // a non-canonical mask
	}
	if size == 32 {
		a = a.Unmap()
	}
	if a.BitLen() != size {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

func ipNetOf(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// isPublicDirect reports whether a is a direct (not relayed) address that
// go-multiaddr counts as public.
func isPublicDirect(a ma.Multiaddr) bool {
	return len(a) > 0 && !isCircuit(a) && manet.IsPublicAddr(a)
}
