package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// runRelayBriefly runs one relay command line in-process, stopping it
// after a while: a command line that should fail but starts a relay
// shows as a wrong exit status instead of a test that never ends.
func runRelayBriefly(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	e, out, errb := testEnv(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code = run(ctx, e, append([]string{"relay", "--listen", "127.0.0.1:0"}, args...))
	return code, out.String(), errb.String()
}

// TestCircuitRelayUsageErrors: a wrong circuit relay flag is a usage
// error (exit 2, one line naming the flag) before anything listens.
func TestCircuitRelayUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	listen := []string{"--circuit-listen", "/ip4/127.0.0.1/tcp/0"}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--circuit-listen", "not a multiaddr"}, "--circuit-listen"},
		{[]string{"--circuit-listen", "/ip4/127.0.0.1/udp/0"}, "--circuit-listen"},
		{[]string{"--circuit-listen", "/ip4/127.0.0.1/tcp/0/ws"}, "--circuit-listen"},
		{[]string{"--circuit-listen", "/ip4/127.0.0.1/udp/0/quic"}, "--circuit-listen"},
		{[]string{"--circuit-listen", "/dns4/localhost/tcp/0"}, "--circuit-listen"},
		{[]string{"--circuit-listen", "/ip4/127.0.0.1/tcp/0/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"}, "--circuit-listen"},
		{[]string{"--circuit-key", filepath.Join(dir, "k")}, "--circuit-key needs --circuit-listen"},
		{[]string{"--public-cidr", "127.0.0.0/8"}, "--public-cidr needs --circuit-listen"},
		{[]string{"--circuit-data", "1MiB"}, "--circuit-data needs --circuit-listen"},
		{append(listen, "--public-cidr", "127.0.0.0/33"), "--public-cidr"},
		{append(listen, "--public-cidr", "localhost"), "--public-cidr"},
		{append(listen, "--circuit-data", "0"), "--circuit-data"},
		{append(listen, "--circuit-duration", "0"), "--circuit-duration"},
		{append(listen, "--public-cidr", "fc00::/7"), "--public-cidr"},
		{append(listen, "--circuit-data", "-1"), "--circuit-data"},
		{append(listen, "--circuit-data", "1XB"), "--circuit-data"},
		{append(listen, "--circuit-duration", "500ms"), "--circuit-duration"},
		{append(listen, "--circuit-duration", "-1m"), "--circuit-duration"},
		{append(listen, "--circuit-max-reservations", "0"), "--circuit-max-reservations"},
		{append(listen, "--circuit-max-per-ip", "0"), "--circuit-max-per-ip"},
		{append(listen, "--circuit-max-per-peer", "0"), "--circuit-max-per-peer"},
		{append(listen, "--circuit-reservation-ttl", "10s"), "--circuit-reservation-ttl"},
		{append(listen, "--circuit-key", dir), "directory"},
		{append(listen, "--circuit-key", fifo), "named pipe"},
	}
	for _, c := range cases {
		code, stdout, stderr := runRelayBriefly(t, c.args...)
		if code != 2 || !strings.HasPrefix(stderr, "phrasemeet relay: ") || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and an error naming %q", c.args, code, stderr, c.want)
		}
		if stdout != "" {
			t.Errorf("%v: printed %q before failing", c.args, stdout)
		}
		assertCleanError(t, stderr)
	}
}

// TestCircuitRelayRefusesBadKeyFile: a key file others may read, or one
// that holds no key, stops the relay with one line; the file is left as
// it was.
func TestCircuitRelayRefusesBadKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, c := range map[string]struct {
		content []byte
		mode    os.FileMode
		want    string
	}{
		"readable by others": {make([]byte, 32), 0o644, "mode 0644"},
		"not a key":          {[]byte("hello\n"), 0o600, "want a 32-byte seed"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(path, c.content, c.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, c.mode)
		code, stdout, stderr := runRelayBriefly(t, "--circuit-listen", "/ip4/127.0.0.1/tcp/0", "--circuit-key", path)
		if code != 1 || !strings.HasPrefix(stderr, "phrasemeet relay: --circuit-key") || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", name, code, stderr, c.want)
		}
		if stdout != "" {
			t.Errorf("%s: printed %q before failing", name, stdout)
		}
		assertCleanError(t, stderr)
		if b, _ := os.ReadFile(path); string(b) != string(c.content) {
			t.Errorf("%s: the key file changed", name)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"1":        1,
		"4096":     4096,
		"4KiB":     4096,
		"4k":       4096,
		"1MiB":     1 << 20,
		"1 MiB":    1 << 20,
		" 2m ":     2 << 20,
		"3GiB":     3 << 30,
		"1B":       1,
		"0":        0,
		"-1":       -1,
		"+7KiB":    7 << 10,
		"8191GiB":  8191 << 30,
		"16777215": 16777215,
	} {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "1KB", "1 MB", "1.5MiB", "1XB", "1 K i B", "0x10", "9223372036854775807KiB",
		"8589934592GiB", "99999999999999999999", "1-2", "--1"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{0: "0", 1: "1", 1000: "1000", 1024: "1KiB", 1536: "1536", 1 << 20: "1MiB", 5 << 30: "5GiB", 3 << 40: "3072GiB"} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseByteSize: any input parses or is refused, never panics, and
// what parses prints back to the same number.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"1", "4KiB", "1 MiB", "3g", "-1", "1KB", "9223372036854775807", "8589934591GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseByteSize(s)
		if err != nil {
			return
		}
		back, err := parseByteSize(formatByteSize(n))
		if err != nil || back != n {
			t.Fatalf("%q → %d → %q → %d, %v", s, n, formatByteSize(n), back, err)
		}
	})
}

func TestParseCircuitListen(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{
		"/ip4/0.0.0.0/tcp/4001",
		"/ip4/198.51.100.7/udp/4001/quic-v1",
		"/ip6/::/tcp/0",
		"/ip6/::1/udp/4001/quic-v1",
	} {
		if _, err := parseCircuitListen(ok); err != nil {
			t.Errorf("parseCircuitListen(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", "/", "0.0.0.0:4001", "/ip4/0.0.0.0", "/tcp/4001", "/ip4/0.0.0.0/udp/4001",
		"/ip4/0.0.0.0/udp/4001/quic", "/ip4/0.0.0.0/tcp/4001/ws", "/ip4/0.0.0.0/udp/4001/quic-v1/webtransport",
		"/dns4/localhost/tcp/4001", "/ip4/0.0.0.0/tcp/4001/tcp/4002", "/ip4/0.0.0.0/ip4/0.0.0.0/tcp/1",
		"/ip4/0.0.0.0/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
		"/ip4/0.0.0.0/tcp/4001/p2p-circuit", "/ip6zone/eth0/ip6/fe80::1/tcp/1", "/unix/tmp/sock",
	} {
		if a, err := parseCircuitListen(bad); err == nil {
			t.Errorf("parseCircuitListen(%q) = %s, want an error", bad, a)
		}
	}
}

// FuzzParseCircuitListen: any input is accepted or refused without a
// panic, and what is accepted is an IP address with a TCP or QUIC port
// that prints back to an address that parses the same.
func FuzzParseCircuitListen(f *testing.F) {
	for _, s := range []string{"/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/1/quic-v1", "/dns4/x/tcp/1", "/ip4/1.2.3.4/tcp/1/p2p-circuit", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseCircuitListen(s)
		if err != nil {
			return
		}
		if _, err := manet.ToIP(a); err != nil {
			t.Fatalf("accepted %q, which has no IP address: %v", s, err)
		}
		_, tcpErr := a.ValueForProtocol(ma.P_TCP)
		_, quicErr := a.ValueForProtocol(ma.P_QUIC_V1)
		if (tcpErr == nil) == (quicErr == nil) {
			t.Fatalf("accepted %q, which is not one of TCP or QUIC", s)
		}
		again, err := parseCircuitListen(a.String())
		if err != nil || !again.Equal(a) {
			t.Fatalf("accepted %q as %s, which parses as %v, %v", s, a, again, err)
		}
	})
}

func TestPublicAddrFilter(t *testing.T) {
	t.Parallel()
	lab := netip.MustParsePrefix("198.51.100.0/24")
	campus := netip.MustParsePrefix("10.0.0.0/8")
	cases := []struct {
		addr   string
		ranges []netip.Prefix
		want   bool
	}{
		{"/ip4/8.8.8.8/tcp/1", nil, true},
		{"/ip4/127.0.0.1/tcp/1", nil, false},
		{"/ip4/10.1.2.3/udp/1/quic-v1", nil, false},
		{"/ip4/10.1.2.3/udp/1/quic-v1", []netip.Prefix{campus}, true},
		{"/ip4/198.51.100.7/tcp/1", nil, false}, // a documentation range: go-multiaddr calls it unroutable
		{"/ip4/198.51.100.7/tcp/1", []netip.Prefix{campus, lab}, true},
		{"/ip4/192.0.2.7/tcp/1", []netip.Prefix{lab}, false}, // another documentation range
		{"/ip6/::ffff:198.51.100.7/tcp/1", []netip.Prefix{lab}, true},
		{"/ip6/fd00::1/tcp/1", []netip.Prefix{campus}, false},
		{"/ip6/fd00::1/tcp/1", []netip.Prefix{netip.MustParsePrefix("fd00::/8")}, true},
	}
	for _, c := range cases {
		a, err := ma.NewMultiaddr(c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := publicAddrFilter(c.ranges)(a); got != c.want {
			t.Errorf("publicAddrFilter(%v)(%s) = %v, want %v", c.ranges, c.addr, got, c.want)
		}
	}
}

// TestCircuitRelayListenFailure: an address the circuit relay cannot
// listen on stops the command with one line naming it, before anything
// is printed; go-libp2p alone would carry on with the other addresses.
func TestCircuitRelayListenFailure(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", taken.Addr().(*net.TCPAddr).Port)
	code, stdout, stderr := runRelayBriefly(t, "--circuit-listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--circuit-listen", busy)
	if code != 1 || !strings.HasPrefix(stderr, "phrasemeet relay: circuit relay: listening on "+busy) {
		t.Errorf("circuit relay on a taken port: exit %d, stderr %q", code, stderr)
	}
	if stdout != "" {
		t.Errorf("printed %q before failing", stdout)
	}
}

// TestCircuitRelayStopsWithContext: when its context ends, the relay
// command returns 0 with both relays closed: neither the circuit relay's
// ports nor the pkarr relay's accept connections any more, while the
// process that ran it lives on.
func TestCircuitRelayStopsWithContext(t *testing.T) {
	t.Parallel()
	e, _, errb := testEnv(t, nil, nil)
	r, w := io.Pipe()
	e.stdout = w
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, e, []string{"relay", "--listen", "127.0.0.1:0", "--log-level", "warn",
			"--circuit-listen", "/ip4/127.0.0.1/tcp/0", "--circuit-listen", "/ip4/127.0.0.1/udp/0/quic-v1"})
		w.Close()
	}()
	var tcpAddr, httpAddr string
	lines := bufio.NewScanner(r)
	for httpAddr == "" && lines.Scan() {
		l := lines.Text()
		if m := servingLine.FindStringSubmatch(l); m != nil {
			httpAddr = strings.TrimPrefix(m[1], "http://")
		}
		if m := circuitLine.FindStringSubmatch(l); m != nil {
			a, err := ma.NewMultiaddr(m[1])
			if err != nil {
				t.Fatal(err)
			}
			if port, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				ip, err := manet.ToIP(a)
				if err != nil {
					t.Fatal(err)
				}
				tcpAddr = net.JoinHostPort(ip.String(), port)
			}
		}
	}
	go io.Copy(io.Discard, r)
	if tcpAddr == "" || httpAddr == "" {
		t.Fatalf("no TCP circuit address or no serving line (circuit %q, http %q); stderr:\n%s", tcpAddr, httpAddr, errb)
	}
	for _, a := range []string{tcpAddr, httpAddr} {
		c, err := net.DialTimeout("tcp", a, 10*time.Second)
		if err != nil {
			t.Fatalf("%s before the end: %v", a, err)
		}
		c.Close()
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("relay returned %d after its context ended:\n%s", c, errb)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("relay did not return after its context ended")
	}
	for _, a := range []string{tcpAddr, httpAddr} {
		if c, err := net.DialTimeout("tcp", a, 10*time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the relay returned", a)
		}
	}
}
