package mdnsdiscovery

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/zeroconf/v2"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/netnstest"
)

// Tests on real mDNS, over this machine's interfaces, with other
// registrations made directly through zeroconf: what a hostile or broken
// host on the LAN could send.

func lanOptions() []Option {
	return []Option{
		WithRepublishInterval(1500 * time.Millisecond),
		WithStaleAfter(5 * time.Second),
		WithLeaveLinger(time.Second),
	}
}

// lanOrSkip is New, skipping the test where no interface carries mDNS.
func lanOrSkip(t *testing.T, secret [32]byte, opts ...Option) *Discoverer {
	t.Helper()
	netnstest.Require(t)
	d, err := New(secret, opts...)
	if errors.Is(err, ErrNoInterface) {
		t.Skipf("mDNS needs a network interface that is up and multicast-capable: %v "+
			"(in a network namespace with only loopback, `ip link set lo multicast on` provides one)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// registerRaw puts a service with the given TXT strings on the LAN under
// d's service name, as any host could.
func registerRaw(t *testing.T, d *Discoverer, txt []string) *zeroconf.Server {
	t.Helper()
	ifaces, err := interfaces(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := zeroconf.RegisterProxy(randomLabel(), d.service, mdnsDomain, servicePort, randomLabel(), hostIPs(ifaces), txt, ifaces, zeroconf.TTL(60))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// newGroupSecret returns a fresh secret: a group no other test shares.
func newGroupSecret() [32]byte {
	var s [32]byte
	_, _ = rand.Read(s[:])
	return s
}

func waitStats(t *testing.T, d *Discoverer, timeout time.Duration, what string, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(d.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v: %+v", what, timeout, d.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHostileLAN(t *testing.T) {
	secret := newGroupSecret()
	d := lanOrSkip(t, secret, lanOptions()...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := d.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var otherSecret [32]byte
	_, _ = rand.Read(otherSecret[:])
	other, _ := newSealer(&otherSecret)
	now := time.Now()
	genuine := func(w wireRecord) []string {
		txt, err := d.sealer.seal(&w)
		if err != nil {
			t.Fatal(err)
		}
		return txt
	}
	forged := liveRecord("forged", uint64(now.UnixMicro()), now, "/ip4/203.0.113.66/udp/1")
	foreign, _ := other.seal(&forged)
	tampered := genuine(forged)
	tampered[0] = tampered[0][:10] + strings.ToUpper(tampered[0][10:11]) + "x" + tampered[0][12:]
	stale := liveRecord("replayed", 1, now.Add(-time.Hour))
	mine := liveRecord("spoofed-self", uint64(now.UnixMicro()), now)
	mine.origin = d.origin

	// Refused before opening, or failing to open: each counts Rejected.
	for _, txt := range [][]string{
		{"hello=world"},
		{"a=\x00\"\\\xff quotes, backslashes and binary"},
		foreign,
		tampered,
	} {
		registerRaw(t, d, txt)
	}
	// Opening, then dropped by the rules.
	registerRaw(t, d, genuine(stale))
	registerRaw(t, d, genuine(mine))
	// An oversized TXT (30 strings, about 6 KB: fragmented on this LAN).
	// It may or may not arrive; either way it must change nothing.
	big := make([]string, 30)
	for i := range big {
		big[i] = strings.Repeat("x", 200)
	}
	registerRaw(t, d, big)

	waitStats(t, d, 20*time.Second, "rejection of the junk", func(s Stats) bool {
		return s.Rejected >= 4 && s.Stale >= 1 && s.Own >= 1
	})

	// A real member announces: it must be the first thing reported.
	member := lanOrSkip(t, secret, lanOptions()...)
	if _, err := member.Announce(ctx, discovery.Record{ID: "member", Addrs: []string{"/ip4/192.0.2.9/udp/1"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Type != discovery.Found || e.Peer.ID != "member" {
			t.Fatalf("first event %v %q, want Found for member: junk got through", e.Type, e.Peer.ID)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the member was not found next to the junk; stats %+v", d.Stats())
	}
	t.Logf("stats: %+v", d.Stats())
}

// A peer that vanishes without a tombstone (crashed, or unplugged) is
// reported Lost once unheard for the stale bound. zeroconf's goodbye,
// which anyone on the LAN could forge, is not taken as a leave.
func TestQuietPeerAgesOut(t *testing.T) {
	d := lanOrSkip(t, newGroupSecret(), lanOptions()...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := d.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	w := liveRecord("crasher", uint64(now.UnixMicro()), now, "/ip4/192.0.2.4/udp/1")
	txt, err := d.sealer.seal(&w)
	if err != nil {
		t.Fatal(err)
	}
	srv := registerRaw(t, d, txt)
	var found discovery.Event
	select {
	case found = <-events:
	case <-time.After(20 * time.Second):
		t.Fatalf("the peer was never found; stats %+v", d.Stats())
	}
	if found.Type != discovery.Found || found.Peer.ID != "crasher" {
		t.Fatalf("event %v %q, want Found for crasher", found.Type, found.Peer.ID)
	}
	srv.Shutdown() // sends zeroconf's goodbye, and nothing more
	select {
	case lost := <-events:
		if lost.Type != discovery.Lost || lost.Peer.ID != "crasher" {
			t.Fatalf("event %v %q, want Lost for crasher", lost.Type, lost.Peer.ID)
		}
		if gap := lost.Time.Sub(found.Time); gap <= d.cfg.staleAfter {
			t.Fatalf("Lost %v after Found, within the stale bound %v: something other than ageing ended the peer", gap, d.cfg.staleAfter)
		}
	case <-time.After(3 * d.cfg.staleAfter):
		t.Fatalf("the quiet peer was not Lost within %v", 3*d.cfg.staleAfter)
	}
}
