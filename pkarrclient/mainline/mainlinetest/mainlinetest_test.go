package mainlinetest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// recordingTB collects what a helper reports instead of failing the test
// it runs in; Fatalf stops the helper with a panic the caller recovers.
type recordingTB struct {
	testing.TB
	errs []string
}

type fatal struct{ msg string }

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	panic(fatal{fmt.Sprintf(format, args...)})
}

// guardedDHT is a passive DHT on a socket of g, with g as its resolver:
// the way Network wires its clients, but with a guard of the test's own,
// so refusals are inspected here instead of failing the test.
func guardedDHT(t *testing.T, g *mainlinetest.Guard, bootstrap ...string) *mainline.DHT {
	t.Helper()
	conn, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	d, err := mainline.New(
		mainline.WithConn(conn),
		mainline.WithBootstrap(bootstrap...),
		mainline.WithResolver(g),
		mainline.WithResendDelay(200*time.Millisecond),
		mainline.WithSendBudget(0, 0),
		mainline.WithRefreshInterval(0),
		mainline.WithTimeout(10*time.Second),
	)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

type oddAddr string

func (a oddAddr) Network() string { return "udp" }
func (a oddAddr) String() string  { return string(a) }

func TestGuardConn(t *testing.T) {
	g := &mainlinetest.Guard{}
	c, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ap := c.LocalAddr().(*net.UDPAddr).AddrPort(); !ap.Addr().IsLoopback() {
		t.Fatalf("Listen opened %v, not a loopback socket", ap)
	}
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	refused := []net.Addr{
		net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:6881")),
		net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:192.0.2.1]:6881")),
		net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[2001:db8::1]:6881")),
		oddAddr("192.0.2.1:6881"),
		oddAddr("router.bittorrent.com:6881"),
	}
	for _, a := range refused {
		if n, err := c.WriteTo([]byte("x"), a); !errors.Is(err, mainlinetest.ErrNotLoopback) || n != 0 {
			t.Errorf("write to %v: %d, %v; want ErrNotLoopback", a, n, err)
		}
	}
	v := g.Violations()
	if len(v) != len(refused) {
		t.Fatalf("%d violations recorded for %d refusals: %q", len(v), len(refused), v)
	}
	for i, a := range refused {
		if !strings.Contains(v[i], a.String()) {
			t.Errorf("violation %q does not name %v", v[i], a)
		}
	}

	// Loopback, in either form, goes through.
	for _, a := range []net.Addr{peer.LocalAddr(),
		net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), peer.LocalAddr().(*net.UDPAddr).AddrPort().Port()))} {
		if _, err := c.WriteTo([]byte("hello"), a); err != nil {
			t.Fatalf("write to loopback %v: %v", a, err)
		}
		buf := make([]byte, 16)
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := peer.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("loopback datagram via %v: %q, %v", a, buf[:n], err)
		}
	}
	if got := len(g.Violations()); got != len(refused) {
		t.Fatalf("loopback writes recorded as violations: %q", g.Violations())
	}
}

// TestGuardNonLoopbackBootstrap: a client whose bootstrap list holds a
// numeric address off loopback (TEST-NET-1) sends nothing there; the guard
// refuses the datagrams and records them.
func TestGuardNonLoopbackBootstrap(t *testing.T) {
	g := &mainlinetest.Guard{}
	d := guardedDHT(t, g, "192.0.2.1:6881")
	if _, err := d.Bootstrap(t.Context()); !errors.Is(err, pkarrclient.ErrUnavailable) {
		t.Fatalf("bootstrap from TEST-NET: %v, want ErrUnavailable", err)
	}
	v := g.Violations()
	if len(v) == 0 {
		t.Fatal("no datagram to 192.0.2.1 was refused")
	}
	for _, s := range v {
		if !strings.Contains(s, "192.0.2.1:6881") {
			t.Errorf("unexpected violation %q", s)
		}
	}
}

// TestGuardRefusesLookups: a host name in the bootstrap list reaches the
// guard's resolver, which refuses and records it.
func TestGuardRefusesLookups(t *testing.T) {
	g := &mainlinetest.Guard{}
	if _, err := g.LookupNetIP(context.Background(), "ip", "example.com"); !errors.Is(err, mainlinetest.ErrNotLoopback) {
		t.Fatalf("LookupNetIP: %v, want ErrNotLoopback", err)
	}
	d := guardedDHT(t, g, "router.bittorrent.com:6881")
	if _, err := d.Bootstrap(t.Context()); !errors.Is(err, pkarrclient.ErrUnavailable) {
		t.Fatalf("bootstrap from a host name: %v, want ErrUnavailable", err)
	}
	v := strings.Join(g.Violations(), "\n")
	for _, want := range []string{`DNS lookup of "example.com"`, `DNS lookup of "router.bittorrent.com"`} {
		if !strings.Contains(v, want) {
			t.Errorf("violations %q lack %s", v, want)
		}
	}
	if strings.Contains(v, "datagram") {
		t.Errorf("a datagram left for a name that was never resolved: %q", v)
	}
}

func TestGuardCheck(t *testing.T) {
	var clean, dirty recordingTB
	(&mainlinetest.Guard{}).Check(&clean)
	if len(clean.errs) != 0 {
		t.Fatalf("a clean guard reported %q", clean.errs)
	}
	g := &mainlinetest.Guard{}
	g.LookupNetIP(context.Background(), "ip", "one.example")
	g.LookupNetIP(context.Background(), "ip", "two.example")
	g.Check(&dirty)
	if len(dirty.errs) != 2 || !strings.Contains(dirty.errs[0], "one.example") || !strings.Contains(dirty.errs[1], "two.example") {
		t.Fatalf("Check reported %q, want both lookups", dirty.errs)
	}
}

func TestNewRejectsEmptyNetwork(t *testing.T) {
	var rec recordingTB
	defer func() {
		if _, ok := recover().(fatal); !ok {
			t.Fatal("New(0) did not fail the test")
		}
	}()
	mainlinetest.New(&rec, 0)
}

// TestNetwork: five nodes come up bootstrapped on loopback, serve a
// publish and a resolve, and pass their own guard.
func TestNetwork(t *testing.T) {
	nw := mainlinetest.New(t, 5)
	if nw.Len() != 5 || len(nw.Addrs()) != 5 {
		t.Fatalf("Len %d, %d addresses", nw.Len(), len(nw.Addrs()))
	}
	seen := map[string]bool{}
	for i, a := range nw.Addrs() {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || !ap.Addr().IsLoopback() || seen[a] {
			t.Fatalf("address %d: %q (%v)", i, a, err)
		}
		seen[a] = true
		n := nw.Node(i)
		if n.AddrPort().String() != a || !n.Serving() {
			t.Fatalf("node %d at %v, serving %v", i, n.AddrPort(), n.Serving())
		}
		if n.RoutingTableSize() == 0 {
			t.Errorf("node %d has an empty routing table after bootstrap", i)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkarrclient.NewBuilder().TXT("_net", 300, "five").Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nw.NewClient().Publish(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := nw.NewClient().Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey()})
	if err != nil || !got.Equal(p) {
		t.Fatalf("resolve: %v, %v", got, err)
	}
	if v := nw.Guard().Violations(); len(v) != 0 {
		t.Fatalf("the network's own traffic tripped its guard: %q", v)
	}
	nw.Guard().Check(t)
}

// TestKillAlive: a killed node is reported dead, stops answering and
// refuses work; killing twice is harmless; the rest carry on.
func TestKillAlive(t *testing.T) {
	nw := mainlinetest.New(t, 5)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i := range nw.Len() {
		if !nw.Alive(i) {
			t.Fatalf("node %d dead before any kill", i)
		}
	}
	nw.Kill(2)
	nw.Kill(2)
	for i := range nw.Len() {
		if nw.Alive(i) != (i != 2) {
			t.Fatalf("node %d alive %v after killing node 2", i, nw.Alive(i))
		}
	}
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkarrclient.NewBuilder().TXT("_kill", 300, "four left").Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Node(2).Publish(ctx, p); !errors.Is(err, pkarrclient.ErrUnavailable) {
		t.Fatalf("publish on a killed node: %v, want ErrUnavailable", err)
	}
	if _, err := nw.NewClient().Publish(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := nw.NewClient().Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey(), MostRecent: true})
	if err != nil || !got.Equal(p) {
		t.Fatalf("resolve with node 2 dead: %v, %v", got, err)
	}

	// The killed node's port no longer answers a ping.
	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ping := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pg1:y1:qe")
	dead, _ := net.ResolveUDPAddr("udp4", nw.Addrs()[2])
	live, _ := net.ResolveUDPAddr("udp4", nw.Addrs()[3])
	buf := make([]byte, 1<<16)
	if _, err := raw.WriteTo(ping, live); err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, from, err := raw.ReadFrom(buf); err != nil || from.String() != live.String() {
		t.Fatalf("a live node did not answer a ping: %v from %v", err, from)
	}
	if _, err := raw.WriteTo(ping, dead); err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, from, err := raw.ReadFrom(buf); err == nil {
		t.Fatalf("the killed node answered: %q from %v", buf[:n], from)
	}
}
