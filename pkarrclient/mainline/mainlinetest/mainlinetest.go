// Package mainlinetest runs private Mainline DHT networks on 127.0.0.1 for tests
// and benchmarks, in the way net/http/httptest runs HTTP servers.
//
// A [Network] is N full (serving) mainline.DHT nodes with the settings
// that make anacrolix nodes converge on loopback: each its own unlimited
// send limiter and no answer budget per source (they all share 127.0.0.1),
// an in-memory item store, a short resend delay, every other node as a
// starting node, and two bootstrap rounds. Every socket the
// package hands out, the nodes' and the clients', is wrapped by a guard that
// refuses to send to a non-loopback address, and every node and client gets
// a resolver that refuses to look anything up; each refusal fails the test
// when the network is cleaned up. So a test built on this package cannot
// leak traffic to the public DHT or its routers, and proves it.
package mainlinetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient/mainline"
)

// DefaultResendDelay is the query resend delay of test nodes and clients:
// long enough for a loaded CI machine to answer on loopback (under -race on
// two cores, with a 30-node network bootstrapping alongside, a reader
// goroutine was seen starved for ~95 ms, so 100 ms dropped whole lookups),
// short enough that a dead node costs little.
const DefaultResendDelay = 500 * time.Millisecond

// Guard records every attempt to leave loopback: datagrams to other
// addresses and DNS lookups. It is safe for concurrent use.
type Guard struct {
	mu         sync.Mutex
	violations []string
}

// Violations returns what was refused so far.
func (g *Guard) Violations() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.violations...)
}

func (g *Guard) record(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.violations = append(g.violations, fmt.Sprintf(format, args...))
}

// ErrNotLoopback is returned by a guarded socket asked to send elsewhere,
// and by the guard's resolver for any lookup.
var ErrNotLoopback = errors.New("mainlinetest: refused to leave loopback")

// Conn wraps c so that a datagram to any non-loopback address is refused
// and recorded instead of sent.
func (g *Guard) Conn(c net.PacketConn) net.PacketConn { return &guardedConn{PacketConn: c, g: g} }

type guardedConn struct {
	net.PacketConn
	g *Guard
}

func (c *guardedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if !isLoopback(addr) {
		c.g.record("datagram of %d bytes to %v", len(b), addr)
		return 0, fmt.Errorf("%w: datagram to %v", ErrNotLoopback, addr)
	}
	return c.PacketConn.WriteTo(b, addr)
}

func isLoopback(addr net.Addr) bool {
	if ua, ok := addr.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap().IsLoopback()
	}
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// LookupNetIP implements mainline.HostResolver by refusing: test
// networks use numeric addresses only.
func (g *Guard) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	g.record("DNS lookup of %q", host)
	return nil, fmt.Errorf("%w: DNS lookup of %q", ErrNotLoopback, host)
}

// Check fails t if the guard refused anything.
func (g *Guard) Check(t testing.TB) {
	t.Helper()
	for _, v := range g.Violations() {
		t.Errorf("mainlinetest: traffic tried to leave loopback: %s", v)
	}
}

// Listen opens a guarded UDP socket on 127.0.0.1 with a random port.
func (g *Guard) Listen() (net.PacketConn, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return g.Conn(c), nil
}

// Option configures a [Network].
type Option func(*config)

type config struct {
	resendDelay time.Duration
	nodeOpts    []mainline.Option
	rounds      int
}

// WithResendDelay sets the resend delay of the network's nodes and
// clients (default [DefaultResendDelay]).
func WithResendDelay(d time.Duration) Option { return func(c *config) { c.resendDelay = d } }

// WithNodeOptions adds options to every node (after the package's own).
func WithNodeOptions(opts ...mainline.Option) Option {
	return func(c *config) { c.nodeOpts = append(c.nodeOpts, opts...) }
}

// WithBootstrapRounds sets how many bootstrap rounds every node runs
// before New returns (default 2).
func WithBootstrapRounds(n int) Option { return func(c *config) { c.rounds = n } }

// Network is a running private DHT.
type Network struct {
	t     testing.TB
	cfg   config
	guard *Guard
	addrs []string

	mu     sync.Mutex
	nodes  []*mainline.DHT
	killed []bool
}

// New starts n serving nodes on 127.0.0.1 and bootstraps them. Everything
// is closed, and the guard checked, when the test ends.
func New(t testing.TB, n int, opts ...Option) *Network {
	t.Helper()
	if n < 1 {
		t.Fatalf("mainlinetest: a network needs at least one node, got %d", n)
	}
	cfg := config{resendDelay: DefaultResendDelay, rounds: 2}
	for _, o := range opts {
		o(&cfg)
	}
	nw := &Network{t: t, cfg: cfg, guard: &Guard{}, killed: make([]bool, n)}
	t.Cleanup(nw.close)

	conns := make([]net.PacketConn, n)
	for i := range conns {
		c, err := nw.guard.Listen()
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			t.Fatalf("mainlinetest: listen: %v", err)
		}
		conns[i] = c
		nw.addrs = append(nw.addrs, c.LocalAddr().String())
	}
	for i, c := range conns {
		var others []string
		for j, a := range nw.addrs {
			if j != i {
				others = append(others, a)
			}
		}
		nodeOpts := append([]mainline.Option{
			mainline.WithConn(c),
			mainline.WithServing(0),
			mainline.WithBootstrap(others...),
			mainline.WithResolver(nw.guard),
			mainline.WithResendDelay(cfg.resendDelay),
			mainline.WithSendBudget(0, 0),
			mainline.WithSourceRateLimit(0, 0), // every node and client is 127.0.0.1
			mainline.WithRefreshInterval(0),
		}, cfg.nodeOpts...)
		d, err := mainline.New(nodeOpts...)
		if err != nil {
			for _, c := range conns[i:] {
				c.Close()
			}
			t.Fatalf("mainlinetest: node %d: %v", i, err)
		}
		nw.nodes = append(nw.nodes, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range cfg.rounds {
		var wg sync.WaitGroup
		for _, d := range nw.nodes {
			wg.Go(func() { d.Bootstrap(ctx) })
		}
		wg.Wait()
	}
	return nw
}

func (nw *Network) close() {
	nw.mu.Lock()
	nodes := nw.nodes
	nw.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range nodes {
		wg.Go(func() { d.Close() })
	}
	wg.Wait()
	nw.guard.Check(nw.t)
}

// Guard is the network's loopback guard; clients built with
// [Network.ClientOptions] share it.
func (nw *Network) Guard() *Guard { return nw.guard }

// Len is the number of nodes, killed ones included.
func (nw *Network) Len() int { return len(nw.addrs) }

// Addrs returns every node's "127.0.0.1:port", killed ones included, in
// node order; it is what a client passes as its bootstrap list.
func (nw *Network) Addrs() []string { return append([]string(nil), nw.addrs...) }

// Node returns node i.
func (nw *Network) Node(i int) *mainline.DHT {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.nodes[i]
}

// Kill stops node i at once, as a crash would: it stops answering and its
// items are gone. Killing a node twice is harmless.
func (nw *Network) Kill(i int) {
	nw.mu.Lock()
	d := nw.nodes[i]
	already := nw.killed[i]
	nw.killed[i] = true
	nw.mu.Unlock()
	if !already {
		d.Close()
	}
}

// Alive reports whether node i has not been killed.
func (nw *Network) Alive(i int) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return !nw.killed[i]
}

// ClientOptions returns the options that point a mainline.DHT at this
// network: a guarded socket on 127.0.0.1, the nodes as bootstrap, the
// guard's resolver, the network's resend delay and no send limit. The
// socket is opened here; a client built with them owns it (New's Close
// closes it), and if New is never called the test's cleanup does.
func (nw *Network) ClientOptions() []mainline.Option {
	nw.t.Helper()
	c, err := nw.guard.Listen()
	if err != nil {
		nw.t.Fatalf("mainlinetest: listen: %v", err)
	}
	nw.t.Cleanup(func() { c.Close() })
	return []mainline.Option{
		mainline.WithConn(c),
		mainline.WithBootstrap(nw.addrs...),
		mainline.WithResolver(nw.guard),
		mainline.WithResendDelay(nw.cfg.resendDelay),
		mainline.WithSendBudget(0, 0),
		mainline.WithRefreshInterval(0),
	}
}

// NewClient starts a passive client on the network, with extra options
// applied after [Network.ClientOptions]. It is closed when the test ends.
func (nw *Network) NewClient(opts ...mainline.Option) *mainline.DHT {
	nw.t.Helper()
	d, err := mainline.New(append(nw.ClientOptions(), opts...)...)
	if err != nil {
		nw.t.Fatalf("mainlinetest: client: %v", err)
	}
	nw.t.Cleanup(func() { d.Close() })
	return d
}
