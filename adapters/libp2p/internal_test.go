package libp2padapter

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery"
)

func TestBackoffDelay(t *testing.T) {
	base, maxDelay := time.Second, 10*time.Second
	for _, c := range []struct {
		attempts int
		want     time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, maxDelay}, {500, maxDelay}} {
		if got := backoffDelay(base, maxDelay, 0, c.attempts, 0.7); got != c.want {
			t.Errorf("attempt %d without jitter: %v, want %v", c.attempts, got, c.want)
		}
	}
	// Jitter stays within its band, and the cap holds after it.
	for _, u := range []float64{0, 0.25, 0.5, 0.999} {
		got := backoffDelay(base, maxDelay, 0.2, 3, u)
		if got < 3200*time.Millisecond || got > 4800*time.Millisecond {
			t.Errorf("jitter 0.2 at u=%v: %v, want within 20%% of 4s", u, got)
		}
		if got := backoffDelay(base, maxDelay, 0.2, 40, u); got > maxDelay {
			t.Errorf("jitter pushed the delay past the cap: %v", got)
		}
	}
	if got := backoffDelay(time.Hour, time.Duration(1<<62), 0, 100, 0); got != time.Duration(1<<62) {
		t.Errorf("doubling near the top of the range: %v", got)
	}
}

func TestAddrFilterPublish(t *testing.T) {
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/0.0.0.0/tcp/1"),
		ma.StringCast("/ip6/::/tcp/1"),
		ma.StringCast("/ip4/127.0.0.1/tcp/2"),
		ma.StringCast("/ip4/192.168.1.2/tcp/3"),
		ma.StringCast("/ip6/::1/udp/4/quic-v1"),
		ma.StringCast("/ip4/192.168.1.2/tcp/3"),
		ma.StringCast("/ip4/203.0.113.9/udp/5/quic-v1"),
	}
	quicOnly := func(m ma.Multiaddr) bool { _, err := m.ValueForProtocol(ma.P_QUIC_V1); return err == nil }
	for _, c := range []struct {
		name string
		f    addrFilter
		want []string
	}{
		// Ranked: a private address before a loopback one, QUIC before
		// TCP within a scope (203.0.113.0/24 is not public to
		// go-multiaddr: it is a documentation range).
		{"default", addrFilter{}, []string{"/ip4/203.0.113.9/udp/5/quic-v1", "/ip4/192.168.1.2/tcp/3"}},
		{"loopback", addrFilter{loopback: true}, []string{"/ip4/203.0.113.9/udp/5/quic-v1", "/ip4/192.168.1.2/tcp/3", "/ip6/::1/udp/4/quic-v1", "/ip4/127.0.0.1/tcp/2"}},
		{"custom", addrFilter{custom: quicOnly}, []string{"/ip4/203.0.113.9/udp/5/quic-v1"}},
		{"custom with loopback", addrFilter{loopback: true, custom: quicOnly}, []string{"/ip4/203.0.113.9/udp/5/quic-v1", "/ip6/::1/udp/4/quic-v1"}},
	} {
		if got := c.f.publish(addrs); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// The published addresses are ranked by kind before a record is trimmed
// to fit from the end: direct QUIC and TCP first, other direct
// transports next, relay circuits last, so a circuit address never
// pushes out a direct one; within a kind, a public address before a
// private one before a loopback one, QUIC before TCP, IPv4 before IPv6.
// The order is a total one over kinds and stable within a kind: the
// same host addresses in any order publish the same list.
func TestAddrFilterRanksByKind(t *testing.T) {
	relay := "/p2p/12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv/p2p-circuit"
	want := []string{
		"/ip4/8.8.8.8/udp/1/quic-v1",
		"/ip4/8.8.8.8/tcp/1",
		"/ip6/2001:4860::1/tcp/1",
		"/ip4/10.11.0.2/udp/2/quic-v1",
		"/ip6/fd00::2/udp/2/quic-v1",
		"/ip4/10.11.0.2/tcp/2",
		"/ip4/127.0.0.1/udp/3/quic-v1",
		"/ip4/127.0.0.1/tcp/3",
		"/ip4/8.8.8.8/udp/1/quic-v1/webtransport",
		"/ip4/10.11.0.2/tcp/2/ws",
		"/ip4/1.1.1.1/udp/4/quic-v1" + relay,
		"/ip4/1.1.1.1/tcp/4" + relay,
		"/ip4/127.0.0.1/tcp/5" + relay,
	}
	addrs := make([]ma.Multiaddr, len(want))
	for i, s := range want {
		addrs[i] = ma.StringCast(s)
	}
	f := addrFilter{loopback: true}
	// Every rotation and the reverse of the list publish the same order.
	inputs := [][]ma.Multiaddr{slices.Clone(addrs)}
	for i := 1; i < len(addrs); i++ {
		inputs = append(inputs, append(slices.Clone(addrs[i:]), addrs[:i]...))
	}
	rev := slices.Clone(addrs)
	slices.Reverse(rev)
	inputs = append(inputs, rev)
	for _, in := range inputs {
		if got := f.publish(in); !slices.Equal(got, want) {
			t.Fatalf("publish(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

// A peer ID is taken in its canonical spelling only, and within a bound
// that every real one fits.
func TestDecodeID(t *testing.T) {
	id, err := peer.Decode("12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := decodeID(id.String()); !ok || got != id {
		t.Errorf("canonical %s: %s, %v", id, got, ok)
	}
	rsa, err := peer.Decode("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeID(rsa.String()); !ok {
		t.Errorf("a hashed (RSA) peer ID %s refused", rsa)
	}
	// An inline key of 42 bytes, the most libp2p inlines.
	inline := peer.ID(append([]byte{0x00, 42}, make([]byte, 42)...))
	if _, ok := decodeID(inline.String()); !ok {
		t.Errorf("a 42-byte inline peer ID (%d characters) refused", len(inline.String()))
	}
	long := peer.ID(append([]byte{0x00, 100}, make([]byte, 100)...))
	if _, err := peer.Decode(long.String()); err != nil {
		t.Fatalf("peer.Decode refuses the long ID itself (%v): the case below tests nothing", err)
	}
	cidForm := peer.ToCid(id).String()
	if got, err := peer.Decode(cidForm); err != nil || got != id {
		t.Fatalf("peer.Decode(%s) = %s, %v: the case below tests nothing", cidForm, got, err)
	}
	for _, s := range []string{cidForm, strings.ToUpper(cidForm[:1]) + strings.ToUpper(cidForm[1:]), long.String(), "", "not an id"} {
		if got, ok := decodeID(s); ok {
			t.Errorf("decodeID(%.30q) = %s, want refused", s, got)
		}
	}
}

// FuzzAddrInfo feeds addrInfo what a hostile group member could write. It
// must never panic, and whatever it accepts must be dialable as promised.
func FuzzAddrInfo(f *testing.F) {
	id := "12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv"
	f.Add(id, "/ip4/127.0.0.1/tcp/1", "/ip4/1.2.3.4/udp/1/quic-v1/p2p/"+id)
	f.Add(id, "garbage", "/p2p/"+id)
	f.Add("", "/ip4/127.0.0.1/tcp/1", "")
	f.Add(id, "/dns4/example.com/tcp/443/wss", "/ip6/::1/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
	f.Add(id, "/ip4/1.2.3.4/tcp/1/p2p-circuit", "/unix/"+strings.Repeat("a", 2000))
	if pid, err := peer.Decode(id); err == nil {
		f.Add(peer.ToCid(pid).String(), "/ip4/127.0.0.1/tcp/1", "") // the same peer as a CID
	}
	f.Fuzz(func(t *testing.T, rid, a1, a2 string) {
		info, ok := addrInfo(discovery.Record{ID: rid, Addrs: []string{a1, a2, a1}})
		if !ok {
			return
		}
		// One spelling per peer ID, so one peer is one cache entry.
		if info.ID.String() != rid || len(rid) > maxIDLen {
			t.Fatalf("ID %q accepted as %s", rid, info.ID)
		}
		if len(info.Addrs) == 0 || len(info.Addrs) > 2 {
			t.Fatalf("%d addresses from 2 distinct inputs", len(info.Addrs))
		}
		for _, m := range info.Addrs {
			if _, pid := peer.SplitAddr(m); pid != "" {
				t.Fatalf("address %s still names a peer", m)
			}
		}
	})
}
