package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
)

// wait bounds what is expected to happen (a datagram arriving, a
// connection opening): far above the lab's round trip of about a
// millisecond, so a loaded machine does not fail a test.
const wait = 10 * time.Second

// quiet is how long a test listens for what must not arrive. Silence for
// this long, hundreds of round trips, stands for "dropped"; a slow
// machine can only make a broken rule pass unnoticed, never fail a test.
const quiet = 500 * time.Millisecond

func udp(t *testing.T, n *Node, addr string) net.PacketConn {
	t.Helper()
	pc, err := n.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

func send(t *testing.T, pc net.PacketConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := pc.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatalf("sending %q to %v: %v", msg, to, err)
	}
}

// recv reads one datagram and returns its source and content.
func recv(t *testing.T, pc net.PacketConn, what string) (netip.AddrPort, string) {
	t.Helper()
	pc.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return addrPort(from), string(buf[:n])
}

func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// silent fails the test if anything arrives on the sockets within quiet.
// The sockets wait side by side, so the test waits quiet once.
func silent(t *testing.T, why string, pcs ...net.PacketConn) {
	t.Helper()
	end := time.Now().Add(quiet)
	for _, pc := range pcs {
		pc.SetReadDeadline(end)
	}
	for _, pc := range pcs {
		buf := make([]byte, 64)
		n, from, err := pc.ReadFrom(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s: %v received %q from %v (%v)", why, pc.LocalAddr(), buf[:n], from, err)
		}
	}
}

func port(a net.Addr) uint16 { return addrPort(a).Port() }

// A host behind each kind of NAT reaches public hosts over UDP and TCP,
// seen from its router's WAN address; the port-preserving router keeps
// the host's port for every destination, the symmetric one does not.
func TestNATReachesPublicHosts(t *testing.T) {
	t.Parallel()
	lab := New(t)
	p1, p2 := lab.PublicHost("p1"), lab.PublicHost("p2")
	in := []net.PacketConn{udp(t, p1.Node, ":4000"), udp(t, p1.Node, ":4001"), udp(t, p2.Node, ":4000")}
	dests := []netip.AddrPort{
		netip.AddrPortFrom(p1.Addr(), 4000),
		netip.AddrPortFrom(p1.Addr(), 4001),
		netip.AddrPortFrom(p2.Addr(), 4000),
	}
	ln, err := p1.Listen("tcp4", ":4000")
	if err != nil {
		t.Fatal(err)
	}
	for _, nat := range []NAT{PortPreserving, Symmetric} {
		home := lab.Router("home-"+nat.String()[:3], nat)
		ann := home.Host("ann-" + nat.String()[:3])
		t.Run(nat.String(), func(t *testing.T) {
			out := udp(t, ann.Node, ":0")
			local := port(out.LocalAddr())
			var seen []uint16
			for i, d := range dests {
				send(t, out, d, "hello")
				src, msg := recv(t, in[i], fmt.Sprintf("%v from %s behind %s", d, ann.Name(), home.Name()))
				if src.Addr() != home.WAN() || msg != "hello" {
					t.Fatalf("%v received %q from %v, want from the router's WAN address %v", d, msg, src, home.WAN())
				}
				seen = append(seen, src.Port())
				// The mapping lets the destination answer.
				if _, err := in[i].WriteTo([]byte("answer"), net.UDPAddrFromAddrPort(src)); err != nil {
					t.Fatal(err)
				}
				if from, msg := recv(t, out, "the answer from "+d.String()); from != d || msg != "answer" {
					t.Fatalf("%s received %q from %v, want the answer from %v", ann.Name(), msg, from, d)
				}
			}
			t.Logf("local port %d seen as %v", local, seen)
			switch nat {
			case PortPreserving:
				for i, p := range seen {
					if p != local {
						t.Errorf("%v saw port %d, want the host's own %d (port-preserving NAT)", dests[i], p, local)
					}
				}
			case Symmetric:
				if !slices.ContainsFunc(seen, func(p uint16) bool { return p != seen[0] }) {
					t.Errorf("every destination saw port %d: a symmetric NAT maps each destination anew", seen[0])
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, err := ann.Dial(ctx, "tcp4", dests[0].String())
			if err != nil {
				t.Fatalf("TCP from behind the router: %v", err)
			}
			accepted, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer accepted.Close()
			src := addrPort(accepted.RemoteAddr())
			if src.Addr() != home.WAN() {
				t.Errorf("TCP from %s arrived from %v, want from %v", ann.Name(), src, home.WAN())
			}
			if nat == PortPreserving && src.Port() != port(c.LocalAddr()) {
				t.Errorf("TCP from port %d arrived from %v, want the same port", port(c.LocalAddr()), src)
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			accepted.SetReadDeadline(time.Now().Add(wait))
			if _, err := io.ReadFull(accepted, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("TCP read %q, %v", buf, err)
			}
		})
	}
}

// Nothing unsolicited gets in: not to a host behind the router, not to
// the router itself, not from a public host the host has not contacted,
// not from another port of one it has, not even from a neighbour on the
// public segment that routes the LAN's range to the router; what arrives
// is dropped, not refused, as by a real home router. Without such a route
// a LAN address is unreachable from the public segment.
func TestUnsolicitedInboundDropped(t *testing.T) {
	t.Parallel()
	lab := New(t)
	p, stranger, neighbour := lab.PublicHost("p"), lab.PublicHost("stranger"), lab.PublicHost("neighbour")
	for _, nat := range []NAT{PortPreserving, Symmetric} {
		home := lab.Router("home-"+nat.String()[:3], nat)
		ann := home.Host("ann-" + nat.String()[:3])
		// The neighbour routes the LAN's range straight to the router, as
		// a machine on the same ISP segment could.
		if out, err := neighbour.Command("ip", "route", "add", home.LAN().String(), "via", home.WAN().String()).CombinedOutput(); err != nil {
			t.Fatalf("a route to the LAN on the neighbour: %v: %s", err, out)
		}
		t.Run(nat.String(), func(t *testing.T) {
			t.Parallel()
			const hostPort, routerPort = 5000, 5001
			annUDP := udp(t, ann.Node, fmt.Sprintf(":%d", hostPort))
			routerUDP := udp(t, home.Node, fmt.Sprintf(":%d", routerPort))
			for n, port := range map[*Node]int{ann.Node: hostPort, home.Node: routerPort} {
				ln, err := n.Listen("tcp4", ":"+strconv.Itoa(port))
				if err != nil {
					t.Fatal(err)
				}
				go acceptAll(ln)
			}

			// Controls: the sockets work, seen from the LAN.
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if _, err := ann.Dial(ctx, "tcp4", netip.AddrPortFrom(home.Gateway(), routerPort).String()); err != nil {
				t.Fatalf("the router's TCP listener from its LAN: %v", err)
			}
			send(t, annUDP, netip.AddrPortFrom(home.Gateway(), routerPort), "lan")
			if _, msg := recv(t, routerUDP, "the router's UDP socket from its LAN"); msg != "lan" {
				t.Fatalf("router received %q", msg)
			}

			// TCP first, so its wait and UDP's overlap.
			tcpTried := make(chan struct{})
			tcpTargets := map[*Node][]netip.AddrPort{
				p.Node: {
					netip.AddrPortFrom(home.WAN(), hostPort),
					netip.AddrPortFrom(home.WAN(), routerPort),
					netip.AddrPortFrom(ann.Addr(), hostPort),
				},
				neighbour.Node: {netip.AddrPortFrom(ann.Addr(), hostPort)},
			}
			tries := 0
			for from, targets := range tcpTargets {
				for _, to := range targets {
					tries++
					go func() {
						defer func() { tcpTried <- struct{}{} }()
						ctx, cancel := context.WithTimeout(context.Background(), quiet)
						defer cancel()
						c, err := from.Dial(ctx, "tcp4", to.String())
						var ne net.Error
						switch {
						case err == nil:
							t.Errorf("TCP from %s reached %v (local %v)", from.Name(), to, c.LocalAddr())
						case !errors.As(err, &ne) || !ne.Timeout():
							t.Errorf("TCP from %s to %v failed with %v: want the SYN dropped, so a timeout", from.Name(), to, err)
						}
					}()
				}
			}

			// ann opens a mapping towards one socket of p only.
			pIn, pOther := udp(t, p.Node, ":0"), udp(t, p.Node, ":0")
			strangerOut, neighbourOut := udp(t, stranger.Node, ":0"), udp(t, neighbour.Node, ":0")
			send(t, annUDP, netip.AddrPortFrom(p.Addr(), port(pIn.LocalAddr())), "out")
			mapped, _ := recv(t, pIn, "ann's datagram to p")

			send(t, strangerOut, mapped, "stranger to the mapped port")
			send(t, pOther, mapped, "p from another port to the mapped port")
			send(t, strangerOut, netip.AddrPortFrom(home.WAN(), hostPort), "to the router's WAN at the host's port")
			send(t, strangerOut, netip.AddrPortFrom(home.WAN(), routerPort), "to the router's own socket")
			send(t, strangerOut, netip.AddrPortFrom(ann.Addr(), hostPort), "to the LAN address")
			send(t, neighbourOut, netip.AddrPortFrom(ann.Addr(), hostPort), "routed to the LAN address")
			silent(t, "unsolicited UDP", annUDP, routerUDP)
			// Control: the mapped destination itself is let in.
			send(t, pIn, mapped, "answer")
			if _, msg := recv(t, annUDP, "p's answer through the mapping"); msg != "answer" {
				t.Fatalf("ann received %q, want p's answer", msg)
			}
			for range tries {
				<-tcpTried
			}
		})
	}
}

func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// Two hosts behind the same router reach each other directly, over UDP
// and TCP, each seeing the other's LAN address.
func TestSameLAN(t *testing.T) {
	t.Parallel()
	lab := New(t)
	home := lab.Router("home", PortPreserving)
	ann, bob := home.Host("ann"), home.Host("bob")
	if !home.LAN().Contains(ann.Addr()) || !home.LAN().Contains(bob.Addr()) || ann.Addr() == bob.Addr() {
		t.Fatalf("ann %v and bob %v, want two addresses in %v", ann.Addr(), bob.Addr(), home.LAN())
	}
	annUDP, bobUDP := udp(t, ann.Node, ":7000"), udp(t, bob.Node, ":0")
	send(t, bobUDP, netip.AddrPortFrom(ann.Addr(), 7000), "hi ann")
	want := netip.AddrPortFrom(bob.Addr(), port(bobUDP.LocalAddr()))
	if from, msg := recv(t, annUDP, "bob's datagram"); from != want || msg != "hi ann" {
		t.Fatalf("ann received %q from %v, want from bob at %v", msg, from, want)
	}
	ln, err := ann.Listen("tcp4", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := bob.Dial(ctx, "tcp4", netip.AddrPortFrom(ann.Addr(), 7000).String()); err != nil {
		t.Fatalf("TCP from bob to ann on their LAN: %v", err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if from := addrPort(c.RemoteAddr()).Addr(); from != bob.Addr() {
		t.Errorf("ann accepted TCP from %v, want bob's LAN address %v", from, bob.Addr())
	}
}

// A command runs in its node's namespace: it sees the node's interface
// and address, and none of the machine's; IPv6 is off, so no link-local
// address offers a way around the routers' IPv4 rules.
func TestCommandRunsInNamespace(t *testing.T) {
	t.Parallel()
	lab := New(t)
	ann := lab.Router("home", PortPreserving).Host("ann")
	out, err := ann.Command("ip", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		got = append(got, f[1]+" "+f[3])
	}
	want := []string{"lo 127.0.0.1/8", "eth0 " + ann.Addr().String() + "/24"}
	if !slices.Equal(got, want) {
		t.Errorf("ann's addresses %q, want %q", got, want)
	}
}

// Building a lab adds no interface to the test's own namespace.
func TestTestNamespaceUntouched(t *testing.T) {
	before := interfaces(t)
	lab := New(t)
	home := lab.Router("home", Symmetric)
	home.Host("ann")
	lab.PublicHost("p")
	if after := interfaces(t); !slices.Equal(before, after) {
		t.Fatalf("interfaces of the test's namespace were %q before the lab, %q with it", before, after)
	}
}

func interfaces(t *testing.T) []string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		names = append(names, fmt.Sprint(i.Name, addrs))
	}
	return names
}

// After a test that passed, no namespace of its lab and no process it
// started remains: neither one proctest started nor one left running,
// nor that one's child.
func TestTeardown(t *testing.T) {
	var namespaces []string
	var pids []int
	var waited chan error
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		ann := lab.Router("home", PortPreserving).Host("ann")
		p := lab.PublicHost("p")
		proctest.Start(t, "sleep", p.Command("sleep", "60"))
		cmd, pid := startTree(t, ann.Node)
		waited = make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		namespaces = lab.Namespaces()
		pids = append(pids, cmd.Process.Pid, pid)
	})
	if waited == nil {
		t.Skip("no lab was built")
	}
	if err := <-waited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the process left running ended with %v, want killed", err)
	}
	checkGone(t, namespaces, pids)
}

// startTree starts in n a shell that starts a sleep and then becomes one
// itself, and returns the command and the child's process ID: a process
// tree whose leaves no one but the lab's teardown knows of.
func startTree(t testing.TB, n *Node) (*exec.Cmd, int) {
	cmd := n.Command("sh", "-c", "sleep 60 & echo $!; exec sleep 60")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("reading the child's process ID: %q, %v", line, err)
	}
	return cmd, pid
}

// checkGone fails t unless none of the namespaces exists and none of the
// processes runs (a zombie awaiting its parent's wait does not run).
func checkGone(t *testing.T, namespaces []string, pids []int) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, ns := range namespaces {
		if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ns) + `( |$)`).Match(out) {
			t.Errorf("namespace %s is still there", ns)
		}
	}
	for _, pid := range pids {
		// A killed orphan is reaped by init a moment later.
		deadline := time.Now().Add(wait)
		for running(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if running(pid) {
			t.Errorf("process %d still runs", pid)
		}
	}
}

func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

const helperEnv = "NETLAB_TEST_HELPER"

// TestHelperLab is not a test: the tests below run the test binary again
// with it alone. It builds a lab, starts a process tree on a host behind
// a router, prints the namespaces and process IDs, waits for a line on
// its standard input and then ends the way helperEnv says: failing,
// panicking, or exiting at once without any cleanup, as a killed test
// process would.
func TestHelperLab(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("run by the teardown tests only")
	}
	lab := New(t)
	ann := lab.Router("home", Symmetric).Host("ann")
	cmd, pid := startTree(t, ann.Node)
	fmt.Printf("namespaces %s\npids %d %d\n", strings.Join(lab.Namespaces(), " "), cmd.Process.Pid, pid)
	bufio.NewReader(os.Stdin).ReadString('\n')
	switch mode {
	case "fatal":
		t.Fatal("failing on purpose")
	case "panic":
		panic("panicking on purpose")
	case "exit":
		os.Exit(3)
	}
}

// runHelper runs TestHelperLab in a process of its own, checks that its
// namespaces and processes exist while it waits, lets it end and returns
// them.
func runHelper(t *testing.T, mode string) (namespaces []string, pids []int) {
	t.Helper()
	requireAvailable(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLab$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	r := bufio.NewReader(stdout)
	for len(namespaces) == 0 || len(pids) == 0 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the helper ended before naming its lab: %v\n%s", err, stderr.String())
		}
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "namespaces":
			namespaces = f[1:]
		case len(f) == 3 && f[0] == "pids":
			for _, s := range f[1:] {
				pid, _ := strconv.Atoi(s)
				pids = append(pids, pid)
			}
		}
	}
	for _, ns := range namespaces {
		if _, err := os.Stat(netnsPath(ns)); err != nil {
			t.Fatalf("while the helper runs: %v", err)
		}
	}
	for _, pid := range pids {
		if !running(pid) {
			t.Fatalf("while the helper runs, its process %d does not", pid)
		}
	}
	stdin.Write([]byte("go\n"))
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the helper (%s) passed\n%s%s", mode, rest, stderr.String())
	}
	t.Logf("the helper (%s) ended: %s", mode, cmd.ProcessState)
	return namespaces, pids
}

// A test that fails, or panics, midway still leaves nothing behind.
func TestTeardownAfterFailure(t *testing.T) {
	for _, mode := range []string{"fatal", "panic"} {
		t.Run(mode, func(t *testing.T) {
			namespaces, pids := runHelper(t, mode)
			checkGone(t, namespaces, pids)
		})
	}
}

// What a test process killed before its cleanup left behind is removed
// by the next New on the machine.
func TestStaleLabsRemoved(t *testing.T) {
	namespaces, pids := runHelper(t, "exit")
	for _, ns := range namespaces {
		if _, err := os.Stat(netnsPath(ns)); err != nil {
			t.Logf("%s already gone (another test process's New may have removed it): %v", ns, err)
		}
	}
	New(t)
	checkGone(t, namespaces, pids)
}

func TestOwnerPID(t *testing.T) {
	for ns, want := range map[string]int{
		"netlab-123-abcdef-core": 123,
		"netlab-7-a-ann":         7,
		"netlab-x-a-ann":         0,
		"netlab-123":             0,
		"other-123-a-b":          0,
		"netlab--a-b":            0,
		"netlab-0-a-b":           0,
	} {
		if got, ok := ownerPID(ns); got != want || ok != (want != 0) {
			t.Errorf("ownerPID(%q) = %d, %v; want %d", ns, got, ok, want)
		}
	}
}

// A real process on a public host serves a host behind a NAT: what
// other packages' end-to-end tests do with their binaries.
func TestProcessServesAcrossNAT(t *testing.T) {
	t.Parallel()
	lab := New(t)
	home := lab.Router("home", PortPreserving)
	ann := home.Host("ann")
	srv := lab.PublicHost("srv")
	cmd := srv.Command(os.Args[0], "-test.run=^TestHelperEcho$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=echo")
	p := proctest.Start(t, "echo server", cmd)
	addr := p.WaitLine(proctest.Stdout, regexp.MustCompile(`^listening (\S+)$`), wait)[1]
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := ann.Dial(ctx, "tcp4", addr)
	if err != nil {
		t.Fatalf("ann dialling the server at %s: %v", addr, err)
	}
	fmt.Fprintln(c, "hello")
	c.SetReadDeadline(time.Now().Add(wait))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
	from := p.WaitLine(proctest.Stdout, regexp.MustCompile(`^from (\S+)$`), wait)[1]
	if ap, err := netip.ParseAddrPort(from); err != nil || ap.Addr() != home.WAN() {
		t.Errorf("the server saw ann come from %s, want from %v", from, home.WAN())
	}
}

// TestHelperEcho is not a test: TestProcessServesAcrossNAT runs the test
// binary with it alone, as a TCP echo server for one connection.
func TestHelperEcho(t *testing.T) {
	if os.Getenv(helperEnv) != "echo" {
		t.Skip("run by TestProcessServesAcrossNAT only")
	}
	ifs, _ := net.InterfaceAddrs()
	var ip string
	for _, a := range ifs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ip = n.IP.String()
		}
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("from %s\n", c.RemoteAddr())
	io.Copy(c, c)
}
