package discovery_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/netlab"
	"github.com/phrasemeet/discovery/internal/passphrase"
	"github.com/phrasemeet/discovery/internal/proctest"
)

// The scenarios of "Across NATs": real chat and relay processes in a test
// internet of network namespaces (internal/netlab), members behind home
// routers that masquerade and drop what they did not ask for. Each
// scenario is what a user on such a network does: start the chat, wait
// for the other to be there, type a line; and what they see: the line
// arriving, and /peers telling how the other is connected.
//
// They skip where no lab can be had (not root, no iptables-nft). With
// PHRASEMEET_NAT_RUNS=N each runs N times and logs the times a run took,
// for BENCHMARKS.md; PHRASEMEET_NAT_REAL=1 runs the chats with their real
// KDF and slot schedule instead of --test-fast's, as a user runs them;
// PHRASEMEET_NAT_LOG=1 logs every process's output, with times, also when
// a run passes.

// natTimeout bounds every wait for a process: generous, for two shared
// cores; the times that matter are measured, not asserted.
const natTimeout = 90 * time.Second

// The binaries the scenarios run, built once, on first use, so that a
// machine without a lab spends no time building them.
var natBins struct {
	once     sync.Once
	dir      string
	chat, pm string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if natBins.dir != "" {
		os.RemoveAll(natBins.dir)
	}
	os.Exit(code)
}

func buildNATBinaries(t *testing.T) {
	t.Helper()
	natBins.once.Do(func() {
		natBins.dir, natBins.err = os.MkdirTemp("", "phrasemeet-nat")
		if natBins.err != nil {
			return
		}
		natBins.chat = filepath.Join(natBins.dir, "chat")
		natBins.pm = filepath.Join(natBins.dir, "phrasemeet")
		for bin, pkg := range map[string]string{natBins.chat: "./examples/chat", natBins.pm: "./cmd/phrasemeet"} {
			out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
			if err != nil {
				natBins.err = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if natBins.err != nil {
		t.Fatal(natBins.err)
	}
}

// natWorld is one run of a scenario: a lab, a pkarr relay on the public
// segment (with a circuit relay in the same process where the scenario
// has one) and the chats.
type natWorld struct {
	t        *testing.T
	lab      *netlab.Lab
	pass     string
	relay    *proctest.Proc
	relayURL string
	circuits []string // the circuit relay's multiaddrs, /p2p/ included
	chats    map[string]*natChat
	start    time.Time
}

type natChat struct {
	*proctest.Proc
	t     *testing.T
	name  string
	id    string // full peer ID
	short string // as the chat prints it: "…" and the last 6 characters
}

func newNATWorld(t *testing.T) *natWorld {
	lab := netlab.New(t)
	buildNATBinaries(t)
	w := &natWorld{t: t, lab: lab, chats: make(map[string]*natChat),
		pass: fmt.Sprintf("across nats %s %d", t.Name(), time.Now().UnixNano())}
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("PHRASEMEET_NAT_LOG") == "" {
			return
		}
		if w.relay != nil {
			t.Logf("relay's output:\n%s", w.relay.Output())
		}
		for _, n := range slices.Sorted(maps.Keys(w.chats)) {
			t.Logf("%s's output, each line with when it came after the chats started:\n%s", n, w.chats[n].timeline(w.start))
		}
	})
	return w
}

// timeline is the chat's output, each line prefixed with when it came.
func (c *natChat) timeline(start time.Time) string {
	var b strings.Builder
	for _, s := range []proctest.Stream{proctest.Stdout, proctest.Stderr} {
		times := c.LineTimes(s)
		for i, l := range c.Lines(s) {
			fmt.Fprintf(&b, "%8v %s\n", times[i].Sub(start).Round(time.Millisecond), l)
		}
	}
	return b.String()
}

func (w *natWorld) env() []string {
	// A dead fallback relay: nothing may reach for a public one.
	return append(os.Environ(), "PHRASEMEET_RELAYS=http://127.0.0.1:1", "PHRASEMEET_CIRCUIT_RELAYS=",
		passphrase.EnvVar+"="+w.pass)
}

// startRelay runs `phrasemeet relay` on h: the pkarr relay, and with
// circuit the circuit relay (TCP and QUIC) in the same process, with the
// extra flags.
func (w *natWorld) startRelay(h *netlab.Host, circuit bool, extra ...string) {
	w.t.Helper()
	addr := h.Addr().String()
	args := []string{"relay", "--listen", addr + ":8080", "--write-rate", "0", "--read-rate", "0",
		"--log-level", "warn"}
	if circuit {
		args = append(args, "--public-cidr", netlab.PublicCIDR, "--circuit-listen", "/ip4/"+addr+"/udp/4001/quic-v1",
			"--circuit-listen", "/ip4/"+addr+"/tcp/4001")
	}
	cmd := h.Command(natBins.pm, append(args, extra...)...)
	cmd.Env = w.env()
	w.relay = proctest.Start(w.t, "relay", cmd)
	w.relayURL = w.relay.WaitLine(proctest.Stdout, regexp.MustCompile(`^relay serving (http://\S+) `), natTimeout)[1]
	w.circuits = nil
	if circuit {
		for _, l := range w.relay.Lines(proctest.Stdout) {
			if m := regexp.MustCompile(`^circuit relay serving (\S+)$`).FindStringSubmatch(l); m != nil {
				w.circuits = append(w.circuits, m[1])
			}
		}
		if len(w.circuits) != 2 {
			w.t.Fatalf("the relay printed %d circuit relay addresses, want 2:\n%s", len(w.circuits), w.relay.Output())
		}
	}
}

// startChat runs a chat named name on h, with the relay's circuit relay
// when withCircuit.
func (w *natWorld) startChat(h *netlab.Host, name string, withCircuit bool, extra ...string) *natChat {
	w.t.Helper()
	args := []string{"--relay", w.relayURL, "--nick", name, "--public-cidr", netlab.PublicCIDR}
	if os.Getenv("PHRASEMEET_NAT_REAL") == "" {
		args = append(args, "--test-fast")
	}
	if withCircuit {
		for _, c := range w.circuits {
			args = append(args, "--circuit-relay", c)
		}
	}
	cmd := h.Command(natBins.chat, append(args, extra...)...)
	cmd.Env = w.env()
	c := &natChat{Proc: proctest.Start(w.t, name, cmd), t: w.t, name: name}
	w.chats[name] = c
	return c
}

// twoHomes starts a relay (pkarr and circuit, with relayArgs) on the
// public segment, and ann and bob each behind a router of their own with
// the NATs given, using the relay; it returns them once they have said
// who they are.
func (w *natWorld) twoHomes(annNAT, bobNAT netlab.NAT, relayArgs ...string) (ann, bob *natChat) {
	w.t.Helper()
	w.startRelay(w.lab.PublicHost("relay"), true, relayArgs...)
	annH := w.lab.Router("annhome", annNAT).Host("ann")
	bobH := w.lab.Router("bobhome", bobNAT).Host("bob")
	w.start = time.Now()
	ann, bob = w.startChat(annH, "ann", true), w.startChat(bobH, "bob", true)
	w.identify(ann, bob)
	return ann, bob
}

// identify waits for each chat to say who it is.
func (w *natWorld) identify(chats ...*natChat) {
	w.t.Helper()
	for _, c := range chats {
		c.id = c.WaitLine(proctest.Stdout, regexp.MustCompile(`^\* you are `+c.name+` \((\w+)\)`), natTimeout)[1]
		c.short = "…" + c.id[len(c.id)-6:]
	}
}

// who matches how the other chats' status lines show c: by nick once
// they know it, before that by the end of its ID.
func (c *natChat) who() string {
	return `(?:` + regexp.QuoteMeta(c.name) + `|` + regexp.QuoteMeta(c.short) + `)`
}

// sees waits until c has a here line for other, and returns when it came.
func (c *natChat) sees(other *natChat) time.Time {
	_, at := c.WaitLineAt(proctest.Stdout, regexp.MustCompile(`^\* `+other.name+` (joined|is here) \(`+other.id+`\)$`), natTimeout)
	return at
}

// hears waits until c prints line from other, and returns when.
func (c *natChat) hears(other *natChat, line string) time.Time {
	_, at := c.WaitLineAt(proctest.Stdout, regexp.MustCompile(`^<`+other.name+`> `+regexp.QuoteMeta(line)+`$`), natTimeout)
	return at
}

// direct waits until c reports a direct link to other, and returns when
// and whether it came by a hole punch.
func (c *natChat) direct(other *natChat) (time.Time, bool) {
	who := other.who()
	m, at := c.WaitLineAt(proctest.Stderr, regexp.MustCompile(`^-- (?:connected to `+who+
		` \((?:we|they) dialed, direct\)|direct link to `+who+`(: hole punched)?)`), natTimeout)
	return at, m[1] != ""
}

// peersLine types /peers into c and returns what it says of other.
func (c *natChat) peersLine(other *natChat) string {
	before := len(c.Lines(proctest.Stdout))
	c.Say("/peers")
	re := regexp.MustCompile(`^\*   ` + other.name + `\s+` + regexp.QuoteMeta(other.short) + `  (.*)$`)
	deadline := time.Now().Add(natTimeout)
	for time.Now().Before(deadline) {
		lines := c.Lines(proctest.Stdout)
		for _, l := range lines[min(before, len(lines)):] {
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("%s's /peers did not list %s within %v", c.name, other.name, natTimeout)
	return ""
}

// measured is what one run of a scenario took.
type measured struct {
	firstLine time.Duration // from starting the chats to the line printed at the receiver
	direct    time.Duration // from starting the chats to the receiver's direct link; 0 if none
}

// natRuns is how many times each scenario runs: PHRASEMEET_NAT_RUNS, 1 by
// default.
func natRuns(t *testing.T) int {
	s := os.Getenv("PHRASEMEET_NAT_RUNS")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("PHRASEMEET_NAT_RUNS=%q: want a positive number", s)
	}
	return n
}

// runNAT runs scenario natRuns times, as subtests, and logs the times.
func runNAT(t *testing.T, scenario func(t *testing.T) measured) {
	var runs []measured
	for i := range natRuns(t) {
		t.Run(strconv.Itoa(i+1), func(t *testing.T) {
			m := scenario(t)
			t.Logf("first line %v, direct %v", m.firstLine.Round(time.Millisecond), m.direct.Round(time.Millisecond))
			runs = append(runs, m)
		})
	}
	if len(runs) == 0 {
		return
	}
	first := make([]time.Duration, len(runs))
	direct := make([]time.Duration, 0, len(runs))
	for i, r := range runs {
		first[i] = r.firstLine
		if r.direct > 0 {
			direct = append(direct, r.direct)
		}
	}
	t.Logf("%d runs: first line p50 %v max %v; direct %s", len(runs), p50(first), slices.Max(first).Round(time.Millisecond), summary(direct, len(runs)))
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[(len(s)-1)/2].Round(time.Millisecond)
}

func summary(ds []time.Duration, runs int) string {
	if len(ds) == 0 {
		return "never"
	}
	return fmt.Sprintf("in %d of %d, p50 %v max %v", len(ds), runs, p50(ds), slices.Max(ds).Round(time.Millisecond))
}

// talk has a wait for b, type line, and waits for b to print it; it
// returns when b did.
func talk(a, b *natChat, line string) time.Time {
	a.sees(b)
	a.Say(line)
	return b.hears(a, line)
}

// Two members behind port-preserving NATs and a dedicated relay: the
// line arrives (over the relay at first), and the link becomes direct by
// a hole punch, which /peers says.
func TestNATTwoHomesWithRelay(t *testing.T) {
	runNAT(t, func(t *testing.T) measured {
		w := newNATWorld(t)
		ann, bob := w.twoHomes(netlab.PortPreserving, netlab.PortPreserving)
		got := talk(ann, bob, "hello from ann's home")
		at, punched := bob.direct(ann)
		if !punched {
			t.Errorf("bob's link to ann turned direct, but not by a hole punch: two NATs that drop what they did not ask for cannot be dialed")
		}
		if s := bob.peersLine(ann); !strings.Contains(s, "; direct (hole punched), connected since") {
			t.Errorf("bob's /peers says of ann %q, want direct (hole punched)", s)
		}
		return measured{firstLine: got.Sub(w.start), direct: at.Sub(w.start)}
	})
}

// One member behind a symmetric NAT: no punch can work, the line arrives
// over the relay, /peers says relayed, and the conversation outlives the
// relay's per-connection limit (set short here: 10 s), as a relayed-only
// conversation must.
func TestNATSymmetricStaysRelayed(t *testing.T) {
	runNAT(t, func(t *testing.T) measured {
		w := newNATWorld(t)
		ann, bob := w.twoHomes(netlab.Symmetric, netlab.PortPreserving, "--circuit-duration", "10s")
		got := talk(ann, bob, "hello from behind a symmetric NAT")
		relayID := w.circuits[0][strings.LastIndex(w.circuits[0], "/")+1:]
		if s := bob.peersLine(ann); !strings.Contains(s, "; relayed through …"+relayID[len(relayID)-6:]+", connected since") {
			t.Errorf("bob's /peers says of ann %q, want relayed through the relay", s)
		}
		// The relay cuts the connection at its limit; the chats are back
		// through it, and talk both ways.
		for _, c := range [][2]*natChat{{ann, bob}, {bob, ann}} {
			c[0].WaitLine(proctest.Stderr, regexp.MustCompile(`^-- lost contact with `+c[1].who()+`, retrying quietly$`), natTimeout)
		}
		bob.Say("still there after the relay's limit")
		ann.hears(bob, "still there after the relay's limit")
		ann.Say("yes, still relayed")
		bob.hears(ann, "yes, still relayed")
		// A departure would be shown at the end of the chat's 5 s grace
		// after the cut.
		time.Sleep(6 * time.Second)
		for _, c := range [][2]*natChat{{ann, bob}, {bob, ann}} {
			if out := c[0].Text(proctest.Stderr); strings.Contains(out, "hole punched") {
				t.Errorf("%s reports a hole punch through a symmetric NAT:\n%s", c[0].name, out)
			}
			if out := c[0].Text(proctest.Stdout); strings.Contains(out, "* "+c[1].name+" left") {
				t.Errorf("%s shows %s leave when the relay's limit cut their connection:\n%s", c[0].name, c[1].name, out)
			}
		}
		return measured{firstLine: got.Sub(w.start)}
	})
}

// Two members behind NATs and one with a public address, no dedicated
// relay: the public member relays for the group, the line arrives, and
// ann and bob end up linked directly.
func TestNATPublicMemberRelays(t *testing.T) {
	runNAT(t, func(t *testing.T) measured {
		w := newNATWorld(t)
		w.startRelay(w.lab.PublicHost("pkarr"), false)
		carolH := w.lab.PublicHost("carol")
		annH := w.lab.Router("annhome", netlab.PortPreserving).Host("ann")
		bobH := w.lab.Router("bobhome", netlab.PortPreserving).Host("bob")
		w.start = time.Now()
		carol := w.startChat(carolH, "carol", false)
		ann, bob := w.startChat(annH, "ann", false), w.startChat(bobH, "bob", false)
		w.identify(carol, ann, bob)
		got := talk(ann, bob, "hello through the group")
		at, _ := bob.direct(ann)
		if s := bob.peersLine(ann); !strings.Contains(s, "; direct") {
			t.Errorf("bob's /peers says of ann %q, want direct", s)
		}
		carol.hears(ann, "hello through the group")
		return measured{firstLine: got.Sub(w.start), direct: at.Sub(w.start)}
	})
}

// Two members behind the same router: they link directly over the LAN,
// though a relay is at hand, and no hole punch is involved.
func TestNATSameRouter(t *testing.T) {
	runNAT(t, func(t *testing.T) measured {
		w := newNATWorld(t)
		w.startRelay(w.lab.PublicHost("relay"), true)
		home := w.lab.Router("home", netlab.PortPreserving)
		annH, bobH := home.Host("ann"), home.Host("bob")
		w.start = time.Now()
		ann, bob := w.startChat(annH, "ann", true), w.startChat(bobH, "bob", true)
		w.identify(ann, bob)
		got := talk(ann, bob, "hello across the room")
		at, punched := bob.direct(ann)
		if punched {
			t.Errorf("bob hole punched to ann on the same LAN")
		}
		if s := bob.peersLine(ann); !strings.Contains(s, "; direct, connected since") {
			t.Errorf("bob's /peers says of ann %q, want direct (not punched)", s)
		}
		return measured{firstLine: got.Sub(w.start), direct: at.Sub(w.start)}
	})
}

// The relay killed mid-conversation: the direct link that the hole punch
// made survives, and a new line still arrives. The time measured as
// "first line" is from the kill to that line.
func TestNATRelayKilled(t *testing.T) {
	runNAT(t, func(t *testing.T) measured {
		w := newNATWorld(t)
		ann, bob := w.twoHomes(netlab.PortPreserving, netlab.PortPreserving)
		talk(ann, bob, "before the relay goes")
		at, _ := bob.direct(ann)
		if _, err := w.relay.Stop(syscall.SIGKILL, natTimeout); err == nil {
			t.Fatalf("the relay exited cleanly after SIGKILL")
		}
		killed := time.Now()
		ann.Say("after the relay went")
		got := bob.hears(ann, "after the relay went")
		bob.Say("and back")
		ann.hears(bob, "and back")
		if s := bob.peersLine(ann); !strings.Contains(s, "; direct") {
			t.Errorf("bob's /peers says of ann %q after the relay died, want direct", s)
		}
		for _, c := range [][2]*natChat{{ann, bob}, {bob, ann}} {
			out := c[0].Text(proctest.Stderr)
			if strings.Contains(out, "lost contact with "+c[1].short) || strings.Contains(out, "disconnected from "+c[1].short) {
				t.Errorf("%s lost its link to %s when the relay died:\n%s", c[0].name, c[1].name, out)
			}
		}
		return measured{firstLine: got.Sub(killed), direct: at.Sub(w.start)}
	})
}
