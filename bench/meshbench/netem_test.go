package meshbench

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery/internal/netdelay"
)

// echoServer accepts one connection on loopback and echoes it.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	return ln.Addr().String()
}

// TestSlowDialerRoundTrip: a connection dialed through slowDialer costs
// one rtt to connect and one per round trip, delivers the bytes intact
// and in order, and honours a read deadline.
func TestSlowDialerRoundTrip(t *testing.T) {
	const rtt = 100 * time.Millisecond
	addr := echoServer(t)
	began := time.Now()
	c, err := slowDialer{rtt: rtt}.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if took := time.Since(began); took < rtt {
		t.Errorf("connecting took %v, want at least the rtt %v", took, rtt)
	}
	msg := bytes.Repeat([]byte("0123456789"), 10_000) // larger than one read
	began = time.Now()
	go func() { _, _ = c.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < rtt {
		t.Errorf("a round trip took %v, want at least the rtt %v", took, rtt)
	}
	if !bytes.Equal(got, msg) {
		t.Error("the echo differs from what was sent")
	}
	if err := c.SetReadDeadline(time.Now().Add(rtt / 2)); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(got)
		read <- err
	}()
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a read with nothing to read ignored its deadline")
	}
}

// TestLoopbackOnly: neither the libp2p dialer nor the HTTP transport
// reaches anything but loopback.
func TestLoopbackOnly(t *testing.T) {
	if _, err := (slowDialer{}).forAddr(ma.StringCast("/ip4/192.0.2.1/tcp/4001")); err == nil {
		t.Error("slowDialer accepted a non-loopback multiaddr")
	}
	control := loopbackDialer().Control
	for addr, ok := range map[string]bool{"192.0.2.1:4001": false, "[2001:db8::1]:80": false, "127.0.0.1:4001": true, "[::1]:80": true} {
		if err := control("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("the dialer's check of %s: %v", addr, err)
		}
	}
	rt := &netdelay.Transport{ForwardedFor: peerIP(0), Base: peerTransport()}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://192.0.2.1/x", nil)
	if _, err := rt.RoundTrip(req); err == nil {
		t.Error("the peer transport sent a request to a non-loopback host")
	}
}

// TestPeerIPsApart: every peer has an address of its own that the relay
// limits apart from the others': distinct IPv4 (pkarrrelay groups IPv6 by
// /64, so 2001:db8::1 and ::2 would share one budget).
func TestPeerIPsApart(t *testing.T) {
	seen := map[string]bool{}
	for i := range 500 {
		a, err := netip.ParseAddr(peerIP(i))
		if err != nil || !a.Is4() {
			t.Fatalf("peerIP(%d) = %q: want IPv4", i, peerIP(i))
		}
		if seen[a.String()] {
			t.Fatalf("peerIP(%d) = %s repeats", i, a)
		}
		seen[a.String()] = true
	}
}
