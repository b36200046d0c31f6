// Package netlab builds a small internet out of Linux network namespaces
// for end-to-end tests: a public segment, home routers that NAT and drop
// unsolicited inbound traffic as real ones do, hosts behind them and hosts
// with public addresses. Tests run real processes on its hosts (Command,
// usable with internal/proctest) and check reachability from Go code
// (Listen, ListenPacket, Dial, Do).
//
//	lab := netlab.New(t) // skips t where no lab can be built
//	home := lab.Router("home", netlab.PortPreserving)
//	ann := home.Host("ann")
//	relay := lab.PublicHost("relay")
//	p := proctest.Start(t, "relay", relay.Command(bin, "relay", "--listen", relay.Addr().String()+":8080"))
//	c, err := ann.Dial(ctx, "tcp", relay.Addr().String()+":8080") // reaches it, from home.WAN()
//
// The topology:
//
//   - The public segment is a bridge in a namespace of its own (the core),
//     198.51.100.0/24, the core itself at 198.51.100.1. Routers' WAN sides
//     and public hosts get the next free addresses and route by default
//     through the core, which silently drops whatever is not for the
//     segment (as the internet drops packets to private addresses).
//   - Router number N (from 1, in creation order) has a LAN bridge with
//     10.(10+N).0.1/24; its hosts get 10.(10+N).0.2 and up and route by
//     default through it. It masquerades what leaves its WAN side
//     (PortPreserving or Symmetric), forwards what comes from the LAN, and
//     accepts from the WAN only packets of connections opened from inside:
//     unsolicited packets are dropped, both those to be forwarded and
//     those addressed to the router itself (a router that answered them,
//     or kept conntrack state for them, would take the port a hole punch
//     needs).
//   - IPv6 is off everywhere, so no link-local address offers a way around
//     the IPv4 rules.
//
// Only documentation and private ranges are used, and nothing is ever
// created in, attached to or routed towards the namespace the test runs
// in: veth pairs are made with both ends already in lab namespaces.
//
// Everything is removed when the test ends, whether it passed, failed or
// panicked: processes in the lab's namespaces are killed, then the
// namespaces deleted (their interfaces vanish with them). Namespaces are
// named netlab-<pid>-<lab>-<node>; New also removes those left by a test
// process that no longer runs (one killed before its cleanup ran).
//
// A lab needs Linux, root, iproute2's ip and iptables-nft (Debian's
// iptables package): the kernel's NAT is driven through iptables-nft,
// because native nftables masquerade and iptables-legacy NAT were seen not
// to translate on the machines this runs on. New checks once per process
// that a NAT'd datagram really is translated, and skips the test, saying
// why, when any of this is missing (fails it, if RequireEnv says so).
//
// The lab's setup methods (New, Router, Host, PublicHost) fail the test
// with t.Fatal, so they are called from the test's goroutine; the others
// may be called from any goroutine.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// NAT is how a router translates the source of what leaves its WAN side.
type NAT int

const (
	// PortPreserving masquerades as most home routers do: a LAN host's
	// source port is kept where it is free, and one local socket keeps one
	// public port whatever the destination (endpoint-independent mapping),
	// so hole punching works.
	PortPreserving NAT = iota
	// Symmetric masquerades with a random port for every new destination
	// (iptables' --random-fully): what one peer observes of a host's port
	// is useless to another, so hole punching fails and only a relay
	// connects such a host.
	Symmetric
)

// String is the NAT kind as test names and logs print it.
func (n NAT) String() string {
	switch n {
	case PortPreserving:
		return "port-preserving"
	case Symmetric:
		return "symmetric"
	}
	return "NAT(" + strconv.Itoa(int(n)) + ")"
}

// Prefix starts the name of every namespace a lab creates.
const Prefix = "netlab-"

const (
	coreAddr   = "198.51.100.1"
	publicBits = 24
	wanIf      = "wan" // a router's side on the public segment
	lanIf      = "lan" // a router's LAN bridge
	hostIf     = "eth0"
	coreBridge = "br0"
	maxNodes   = 250 // public addresses .2 to .251; LANs 10.11 to 10.255
)

// PublicCIDR is the public segment's range, a documentation range that
// go-multiaddr counts as unroutable: programs under test that filter
// addresses by routability must be told to treat it as public.
const PublicCIDR = "198.51.100.0/24"

var publicNet = netip.MustParsePrefix(PublicCIDR)

// Lab is one test internet. It lives until the test that made it ends.
type Lab struct {
	t  testing.TB
	id string // netlab-<pid>-<random>

	mu      sync.Mutex
	nodes   []*Node // the core first, then in creation order
	names   map[string]bool
	public  int // public addresses handed out, after the core's
	routers int
	closed  bool
}

// Node is a network namespace of the lab: a host or a router. Processes
// and sockets made through it live in its namespace.
type Node struct {
	lab  *Lab
	name string
	ns   string
	addr netip.Addr
}

// Router is a home router: a namespace with a WAN side on the public
// segment and a LAN bridge its hosts hang off. Its Node addresses are
// those of the WAN side.
type Router struct {
	*Node
	nat   NAT
	lan   netip.Prefix
	hosts int
}

// Host is an end host, either on the public segment or behind a Router.
type Host struct {
	*Node
	router *Router
}

// New builds the public segment of a new lab, removes what crashed test
// processes left of earlier ones, and registers the teardown of it all
// with t.Cleanup. It skips t when this machine cannot host a lab (fails
// it, if RequireEnv says so).
func New(t testing.TB) *Lab {
	t.Helper()
	requireAvailable(t)
	if err := removeStale(); err != nil {
		t.Logf("netlab: removing namespaces left by earlier runs: %v", err)
	}
	l, err := newLab()
	if l != nil {
		l.t = t
		t.Cleanup(func() {
			if err := l.close(); err != nil {
				t.Errorf("netlab: teardown: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return l
}

// newLab makes the core: a namespace holding the public segment's bridge.
// It returns the lab even on error, so what was made can be removed.
func newLab() (*Lab, error) {
	var l *Lab
	for range 5 {
		var b [3]byte
		rand.Read(b[:])
		l = &Lab{id: fmt.Sprintf("%s%d-%s", Prefix, os.Getpid(), hex.EncodeToString(b[:])), names: map[string]bool{}}
		core, err := l.addNode("core", netip.MustParseAddr(coreAddr))
		if errors.Is(err, errExists) {
			continue
		}
		if err != nil {
			return l, err
		}
		return l, core.setup(
			ipCmd("-n", core.ns, "link", "add", coreBridge, "type", "bridge"),
			ipCmd("-n", core.ns, "addr", "add", coreAddr+"/24", "dev", coreBridge),
			ipCmd("-n", core.ns, "link", "set", coreBridge, "up"),
			// Forwarding on, so that a packet for elsewhere meets the
			// blackhole route and vanishes without an ICMP error, as
			// packets to private addresses do on the internet.
			sysctl("net/ipv4/ip_forward", "1"),
			ipCmd("-n", core.ns, "route", "add", "blackhole", "default"),
		)
	}
	return nil, errors.New("no free name for a lab")
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,15}$`)

// addNode creates an empty namespace for the node: loopback up, IPv6 off.
func (l *Lab) addNode(name string, addr netip.Addr) (*Node, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("the lab is torn down")
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("node name %q: want 1-16 of a-z, 0-9 and -", name)
	}
	if l.names[name] {
		return nil, fmt.Errorf("node name %q is taken", name)
	}
	n := &Node{lab: l, name: name, ns: l.id + "-" + name, addr: addr}
	if out, err := exec.Command("ip", "netns", "add", n.ns).CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("File exists")) {
			return nil, fmt.Errorf("namespace %s: %w", n.ns, errExists)
		}
		return nil, fmt.Errorf("ip netns add %s: %v: %s", n.ns, err, bytes.TrimSpace(out))
	}
	l.names[name] = true
	l.nodes = append(l.nodes, n)
	return n, nil
}

var errExists = errors.New("namespace exists")

// step is one setup action in a node's namespace.
type step func(n *Node) error

func ipCmd(args ...string) step {
	return func(*Node) error { return run(nil, "ip", args...) }
}

// sysctl sets a sysctl in the node's namespace; key is its path under
// /proc/sys. A key the kernel lacks (IPv6 compiled out) is no error.
func sysctl(key, value string) step {
	return func(n *Node) error {
		return n.Do(func() error {
			err := os.WriteFile("/proc/sys/"+key, []byte(value), 0)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		})
	}
}

// setup brings the node's loopback up, turns IPv6 off and runs steps.
func (n *Node) setup(steps ...step) error {
	base := []step{
		sysctl("net/ipv6/conf/all/disable_ipv6", "1"),
		sysctl("net/ipv6/conf/default/disable_ipv6", "1"),
		ipCmd("-n", n.ns, "link", "set", "lo", "up"),
	}
	for _, s := range append(base, steps...) {
		if err := s(n); err != nil {
			return fmt.Errorf("setting up %s: %w", n.name, err)
		}
	}
	return nil
}

// run runs a command, feeding it stdin; its output goes into the error.
func run(stdin []byte, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nextPublic hands out the next address on the public segment.
func (l *Lab) nextPublic() (netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.public >= maxNodes {
		return netip.Addr{}, errors.New("the public segment is full")
	}
	l.public++
	a := publicNet.Addr().As4()
	a[3] = byte(1 + l.public)
	return netip.AddrFrom4(a), nil
}

// plug connects n to the public segment at addr through a veth pair whose
// ends are made directly in the core and in n, as interface ifname.
func (l *Lab) plug(n *Node, ifname string, addr netip.Addr) step {
	core := l.nodes[0]
	port := "p" + strconv.Itoa(int(addr.As4()[3]))
	return func(*Node) error {
		for _, args := range [][]string{
			{"-n", core.ns, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", n.ns},
			{"-n", core.ns, "link", "set", port, "master", coreBridge, "up"},
			{"-n", n.ns, "addr", "add", addr.String() + "/" + strconv.Itoa(publicBits), "dev", ifname},
			{"-n", n.ns, "link", "set", ifname, "up"},
			{"-n", n.ns, "route", "add", "default", "via", coreAddr},
		} {
			if err := run(nil, "ip", args...); err != nil {
				return err
			}
		}
		return nil
	}
}

// PublicHost adds a host with an address of its own on the public
// segment, reachable from everywhere, behind no firewall.
func (l *Lab) PublicHost(name string) *Host {
	l.t.Helper()
	h, err := l.publicHost(name)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return h
}

func (l *Lab) publicHost(name string) (*Host, error) {
	addr, err := l.nextPublic()
	if err != nil {
		return nil, err
	}
	n, err := l.addNode(name, addr)
	if err != nil {
		return nil, err
	}
	return &Host{Node: n}, n.setup(l.plug(n, hostIf, addr))
}

// Router adds a home router with the given NAT and a LAN of its own.
func (l *Lab) Router(name string, nat NAT) *Router {
	l.t.Helper()
	r, err := l.router(name, nat)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return r
}

func (l *Lab) router(name string, nat NAT) (*Router, error) {
	if nat != PortPreserving && nat != Symmetric {
		return nil, fmt.Errorf("router %s: unknown %v", name, nat)
	}
	l.mu.Lock()
	if l.routers >= 255-10 {
		l.mu.Unlock()
		return nil, errors.New("no LAN range left for another router")
	}
	l.routers++
	lan := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(10 + l.routers), 0, 0}), 24)
	l.mu.Unlock()
	wan, err := l.nextPublic()
	if err != nil {
		return nil, err
	}
	n, err := l.addNode(name, wan)
	if err != nil {
		return nil, err
	}
	r := &Router{Node: n, nat: nat, lan: lan}
	return r, n.setup(
		l.plug(n, wanIf, wan),
		ipCmd("-n", n.ns, "link", "add", lanIf, "type", "bridge"),
		ipCmd("-n", n.ns, "addr", "add", r.gateway().String()+"/24", "dev", lanIf),
		ipCmd("-n", n.ns, "link", "set", lanIf, "up"),
		sysctl("net/ipv4/ip_forward", "1"),
		func(n *Node) error {
			return run([]byte(rules(nat)), "ip", "netns", "exec", n.ns, "iptables-nft-restore")
		},
	)
}

// rules is the router's iptables ruleset. LAN traffic is accepted whether
// routed or bridged (br_netfilter, where loaded, passes bridged frames
// through FORWARD with the bridge as in-interface).
func rules(nat NAT) string {
	masq := "-A POSTROUTING -o " + wanIf + " -j MASQUERADE"
	if nat == Symmetric {
		masq += " --random-fully"
	}
	return strings.Join([]string{
		"*nat",
		":PREROUTING ACCEPT [0:0]",
		":INPUT ACCEPT [0:0]",
		":OUTPUT ACCEPT [0:0]",
		":POSTROUTING ACCEPT [0:0]",
		masq,
		"COMMIT",
		"*filter",
		":INPUT DROP [0:0]",
		":FORWARD DROP [0:0]",
		":OUTPUT ACCEPT [0:0]",
		"-A INPUT -i lo -j ACCEPT",
		"-A INPUT -i " + lanIf + " -j ACCEPT",
		"-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A FORWARD -i " + lanIf + " -j ACCEPT",
		"-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"COMMIT",
		"",
	}, "\n")
}

// Host adds a host on the router's LAN.
func (r *Router) Host(name string) *Host {
	r.lab.t.Helper()
	h, err := r.host(name)
	if err != nil {
		r.lab.t.Fatalf("netlab: %v", err)
	}
	return h
}

func (r *Router) host(name string) (*Host, error) {
	l := r.lab
	l.mu.Lock()
	if r.hosts >= maxNodes {
		l.mu.Unlock()
		return nil, fmt.Errorf("the LAN of %s is full", r.name)
	}
	r.hosts++
	a := r.lan.Addr().As4()
	a[3] = byte(1 + r.hosts)
	l.mu.Unlock()
	addr := netip.AddrFrom4(a)
	n, err := l.addNode(name, addr)
	if err != nil {
		return nil, err
	}
	port := "h" + strconv.Itoa(int(a[3]))
	return &Host{Node: n, router: r}, n.setup(
		ipCmd("-n", r.ns, "link", "add", port, "type", "veth", "peer", "name", hostIf, "netns", n.ns),
		ipCmd("-n", r.ns, "link", "set", port, "master", lanIf, "up"),
		ipCmd("-n", n.ns, "addr", "add", addr.String()+"/24", "dev", hostIf),
		ipCmd("-n", n.ns, "link", "set", hostIf, "up"),
		ipCmd("-n", n.ns, "route", "add", "default", "via", r.gateway().String()),
	)
}

// gateway is the router's address on its LAN.
func (r *Router) gateway() netip.Addr {
	a := r.lan.Addr().As4()
	a[3] = 1
	return netip.AddrFrom4(a)
}

// WAN is the router's address on the public segment: the source address
// the rest of the lab sees for its hosts.
func (r *Router) WAN() netip.Addr { return r.addr }

// LAN is the router's home network, 10.(10+N).0.0/24.
func (r *Router) LAN() netip.Prefix { return r.lan }

// Gateway is the router's address on its LAN, its hosts' default route.
func (r *Router) Gateway() netip.Addr { return r.gateway() }

// NAT is how the router translates.
func (r *Router) NAT() NAT { return r.nat }

// Router is the router the host sits behind; nil for a public host.
func (h *Host) Router() *Router { return h.router }

// Public reports whether the host has an address on the public segment.
func (h *Host) Public() bool { return h.router == nil }

// Name is the node's name as given to the lab.
func (n *Node) Name() string { return n.name }

// Namespace is the name of the node's network namespace, as `ip netns`
// knows it.
func (n *Node) Namespace() string { return n.ns }

// Addr is the node's IPv4 address: a host's own (public, or on its
// router's LAN), a router's WAN address.
func (n *Node) Addr() netip.Addr { return n.addr }

// Command returns a command that runs the named program inside the node's
// namespace (through `ip netns exec`, which execs the program, so the
// process is the program's and killing it kills the program). Set its
// environment, input and output as for exec.Command; it may be handed to
// proctest.Start. Whatever it leaves running is killed at teardown.
func (n *Node) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.ns, name}, args...)...)
}

// CommandContext is Command with a context that kills the process.
func (n *Node) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns, name}, args...)...)
}

// Do runs f on an OS thread that has entered the node's namespace, and
// returns its error. Sockets f creates belong to the namespace for their
// whole life, whichever goroutine uses them later; goroutines f starts do
// not run in the namespace, so f must create its sockets itself. The
// thread is discarded afterwards, never returned to other goroutines.
func (n *Node) Do(f func() error) error {
	return inNamespace(netnsPath(n.ns), f)
}

// Listen is net.Listen inside the node's namespace. The listener is
// closed when the lab's test (the one given to New) ends, if not before.
func (n *Node) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	n.lab.t.Cleanup(func() { ln.Close() })
	return ln, nil
}

// ListenPacket is net.ListenPacket inside the node's namespace. The
// connection is closed when the lab's test ends, if not before.
func (n *Node) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := n.listenPacket(network, address)
	if err != nil {
		return nil, err
	}
	n.lab.t.Cleanup(func() { pc.Close() })
	return pc, nil
}

func (n *Node) listenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	return pc, nil
}

// Dial dials address from inside the node's namespace, as
// net.Dialer.DialContext does. The connection is closed when the lab's
// test ends, if not before.
func (n *Node) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	n.lab.t.Cleanup(func() { c.Close() })
	return c, nil
}

// Namespaces lists the names of the lab's namespaces, the core's first.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, len(l.nodes))
	for i, n := range l.nodes {
		names[i] = n.ns
	}
	return names
}

// close kills every process in the lab's namespaces, then deletes them.
func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	nodes := l.nodes
	l.mu.Unlock()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, killAll(netnsPath(n.ns)))
	}
	for _, n := range nodes {
		errs = append(errs, run(nil, "ip", "netns", "del", n.ns))
	}
	return errors.Join(errs...)
}

// removeStale deletes namespaces of labs whose test process is gone.
func removeStale() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || pid == os.Getpid() || processExists(pid) {
			continue
		}
		errs = append(errs, killAll(netnsPath(e.Name())))
		if err := run(nil, "ip", "netns", "del", e.Name()); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err) // another test process may have removed it first
		}
	}
	return errors.Join(errs...)
}

// ownerPID parses the process ID out of a lab namespace's name.
func ownerPID(ns string) (int, bool) {
	rest, ok := strings.CutPrefix(ns, Prefix)
	if !ok {
		return 0, false
	}
	pid, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(pid)
	return n, err == nil && n > 0
}

const netnsDir = "/run/netns" // where ip netns keeps its names

func netnsPath(ns string) string { return netnsDir + "/" + ns }

// RequireEnv names the environment variable that, set to "require",
// turns every skip for want of a lab into a failure: CI sets it where it
// has installed what a lab needs, so that a lab that stops working fails
// the build rather than skipping the tests that use it.
const RequireEnv = "PHRASEMEET_NETLAB"

// requireAvailable skips t, or fails it under RequireEnv, unless a lab can
// be built here.
func requireAvailable(t testing.TB) {
	t.Helper()
	reason := unavailable()
	switch {
	case reason == "":
	case os.Getenv(RequireEnv) == "require":
		t.Fatalf("netlab: %s (and %s=require)", reason, RequireEnv)
	default:
		t.Skip("netlab: " + reason)
	}
}

// unavailable says why no lab can be built here, "" if one can. The
// machine does not change during a test run, so it is found out once.
var unavailable = sync.OnceValue(func() string {
	if runtime.GOOS != "linux" {
		return "network namespaces exist on Linux only"
	}
	if os.Geteuid() != 0 {
		return "building namespaces and NAT needs root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip (iproute2) is not installed: " + err.Error()
	}
	if _, err := exec.LookPath("iptables-nft-restore"); err != nil {
		return "iptables-nft is not installed (apt-get install iptables): " + err.Error()
	}
	if err := probe(); err != nil {
		return "NAT does not work here: " + err.Error()
	}
	return ""
})
