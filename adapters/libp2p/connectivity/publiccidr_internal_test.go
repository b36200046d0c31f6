package connectivity

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"
)

func TestSubtractPrefix(t *testing.T) {
	for _, c := range []struct {
		n, r string
		want []string
	}{
		{"10.0.0.0/8", "192.168.0.0/16", []string{"10.0.0.0/8"}},
		{"198.51.100.0/24", "198.51.100.0/24", nil},
		{"198.51.100.0/24", "198.51.0.0/16", nil},
		{"10.0.0.0/8", "10.0.0.0/9", []string{"10.128.0.0/9"}},
		{"10.0.0.0/8", "10.128.0.0/9", []string{"10.0.0.0/9"}},
		{"10.0.0.0/8", "10.1.0.0/16", []string{"10.0.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13", "10.16.0.0/12", "10.32.0.0/11", "10.64.0.0/10", "10.128.0.0/9"}},
		{"127.0.0.0/8", "127.0.0.1/32", []string{"127.0.0.0/32", "127.0.0.2/31", "127.0.0.4/30", "127.0.0.8/29", "127.0.0.16/28", "127.0.0.32/27", "127.0.0.64/26", "127.0.0.128/25", "127.0.1.0/24", "127.0.2.0/23", "127.0.4.0/22", "127.0.8.0/21", "127.0.16.0/20", "127.0.32.0/19", "127.0.64.0/18", "127.0.128.0/17", "127.1.0.0/16", "127.2.0.0/15", "127.4.0.0/14", "127.8.0.0/13", "127.16.0.0/12", "127.32.0.0/11", "127.64.0.0/10", "127.128.0.0/9"}},
		{"2001:db8::/32", "2001:db8:1::/48", []string{"2001:db8::/48", "2001:db8:2::/47", "2001:db8:4::/46", "2001:db8:8::/45", "2001:db8:10::/44", "2001:db8:20::/43", "2001:db8:40::/42", "2001:db8:80::/41", "2001:db8:100::/40", "2001:db8:200::/39", "2001:db8:400::/38", "2001:db8:800::/37", "2001:db8:1000::/36", "2001:db8:2000::/35", "2001:db8:4000::/34", "2001:db8:8000::/33"}},
		{"10.0.0.0/8", "::/0", []string{"10.0.0.0/8"}}, // families never mix
	} {
		var got []string
		for _, p := range subtractPrefix(netip.MustParsePrefix(c.n), netip.MustParsePrefix(c.r)) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s minus %s = %q, want %q", c.n, c.r, got, c.want)
		}
	}
}

func TestWithoutRanges(t *testing.T) {
	list := []*net.IPNet{ipNetOf(netip.MustParsePrefix("10.0.0.0/8")), ipNetOf(netip.MustParsePrefix("198.51.100.0/24")), nil}
	if got, changed := withoutRanges(list, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}); changed || &got[0] != &list[0] {
		t.Errorf("removing a range not listed changed the list: %v", got)
	}
	got, changed := withoutRanges(list, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("10.0.0.0/9")})
	if !changed || len(got) != 2 || got[0].String() != "10.128.0.0/9" || got[1] != nil {
		t.Errorf("withoutRanges = %v, %v; want [10.128.0.0/9 <nil>], true", got, changed)
	}
	if list[0].String() != "10.0.0.0/8" || len(list) != 3 {
		t.Errorf("the input list was modified: %v", list)
	}
}

func TestParsePublicCIDR(t *testing.T) {
	if p, err := ParsePublicCIDR(" 198.51.100.0/24 "); err != nil || p.String() != "198.51.100.0/24" {
		t.Errorf("ParsePublicCIDR: %v, %v", p, err)
	}
	for _, s := range []string{"", "198.51.100.7/24", "198.51.100.0", "198.51.100.0/33", "example.com/24", "10.0.0.0/8/8"} {
		if _, err := ParsePublicCIDR(s); err == nil {
			t.Errorf("ParsePublicCIDR(%q) accepted", s)
		}
	}
}

// FuzzSubtractPrefix checks subtractPrefix against its definition on
// IPv4: the result is disjoint prefixes, ordered, inside n, and an address
// is in one of them exactly when it is in n and not in r.
func FuzzSubtractPrefix(f *testing.F) {
	f.Add(uint32(0x0a000000), uint8(8), uint32(0x0a010000), uint8(16), uint32(0x0a010203))
	f.Add(uint32(0xc6336400), uint8(24), uint32(0xc6336400), uint8(24), uint32(0xc6336401))
	f.Add(uint32(0), uint8(0), uint32(0x7f000001), uint8(32), uint32(0x7f000002))
	f.Fuzz(func(t *testing.T, na uint32, nb uint8, ra uint32, rb uint8, probe uint32) {
		n := netip.PrefixFrom(addr4(na), int(nb%33)).Masked()
		r := netip.PrefixFrom(addr4(ra), int(rb%33)).Masked()
		got := subtractPrefix(n, r)
		if len(got) > 32 {
			t.Fatalf("%v minus %v: %d prefixes", n, r, len(got))
		}
		for i, p := range got {
			if !p.IsValid() || p != p.Masked() || !n.Contains(p.Addr()) || p.Bits() < n.Bits() || p.Overlaps(r) {
				t.Fatalf("%v minus %v: bad part %v", n, r, p)
			}
			if i > 0 && (got[i-1].Overlaps(p) || got[i-1].Addr().Compare(p.Addr()) >= 0) {
				t.Fatalf("%v minus %v: parts %v, %v overlap or are out of order", n, r, got[i-1], p)
			}
		}
		// The probe, moved into n so it says something.
		x := addr4(binary.BigEndian.Uint32(n.Addr().AsSlice()) | probe&^mask4(n.Bits()))
		in := slices.ContainsFunc(got, func(p netip.Prefix) bool { return p.Contains(x) })
		if want := !r.Contains(x); in != want {
			t.Fatalf("%v minus %v: %v covered %v, want %v (parts %v)", n, r, x, in, want, got)
		}
	})
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func mask4(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}
