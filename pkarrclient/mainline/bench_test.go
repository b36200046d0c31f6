package mainline_test

// DHT benchmarks: mainline.DHT against anacrolix's own exts/getput on the
// same private loopback network, with the same keys, in the same run.
//
// Latency percentiles and memory per client, the tables in BENCHMARKS.md
// (minutes; skipped unless PHRASEMEET_DHT_BENCH=1):
//
//	PHRASEMEET_DHT_BENCH=1 go test -run='^TestDHTBench$' -v -timeout=90m ./pkarrclient/
//
// PHRASEMEET_DHT_BENCH_RUNS picks the resend delays and samples per cell
// (default "100ms:200,2s:50"), PHRASEMEET_DHT_BENCH_NODES the network sizes
// (default "10,30"), PHRASEMEET_DHT_BENCH_CLIENTS the clients started for the
// memory figures (default 100).
//
// Allocations and time per operation, one client at a time on a live
// 10-node network:
//
//	go test -run='^$' -bench='^BenchmarkDHT' -benchmem ./pkarrclient/
//
// The network runs in a child process (this test binary again, running
// TestDHTBenchNetworkProcess), so the heap, goroutine and allocation figures
// of this process are the clients' alone, not the serving nodes'. The child
// is a mainlinetest.Network: every node's socket is guarded to loopback, and the
// clients here use guarded sockets too, checked at the end.

import (
	"bufio"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/exts/getput"
	"github.com/anacrolix/dht/v2/krpc"
	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent/bencode"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

const (
	dhtBenchEnv        = "PHRASEMEET_DHT_BENCH"
	dhtBenchRunsEnv    = "PHRASEMEET_DHT_BENCH_RUNS"
	dhtBenchNodesEnv   = "PHRASEMEET_DHT_BENCH_NODES"
	dhtBenchClientsEnv = "PHRASEMEET_DHT_BENCH_CLIENTS"
	// dhtBenchNetworkEnv ("nodes/resend") makes TestDHTBenchNetworkProcess
	// run a network; only startBenchNetwork sets it, for its child.
	dhtBenchNetworkEnv = "PHRASEMEET_DHT_BENCH_NETWORK"

	// dhtBenchKeys is how many keys a latency run publishes and resolves,
	// in turn.
	dhtBenchKeys = 20
	// dhtBenchDeadPercent of the nodes are killed for the "dead" cells.
	dhtBenchDeadPercent = 30
	// dhtBenchOpTimeout bounds each getput call, as WithTimeout's default
	// bounds ours.
	dhtBenchOpTimeout = 10 * time.Second
	// dhtBenchFixedResend is the resend delay of the memory figures and
	// the go test -bench benchmarks, pinned rather than taken from
	// mainlinetest.DefaultResendDelay so that their figures stay comparable.
	dhtBenchFixedResend = 100 * time.Millisecond
	// The packet is the shape iroh publishes, as in the codec benchmarks.
	dhtBenchRelay = "relay=https://euw1-1.relay.iroh.network./"
)

// ---------------------------------------------------------------------
// The network, in a child process.

// TestDHTBenchNetworkProcess is not a test: it is the child process that
// startBenchNetwork runs. It starts a mainlinetest network, prints the nodes'
// addresses, kills the nodes it is told to on stdin and exits at EOF.
func TestDHTBenchNetworkProcess(t *testing.T) {
	spec := os.Getenv(dhtBenchNetworkEnv)
	if spec == "" {
		t.Skip("helper process of the DHT benchmarks; runs only when they start it")
	}
	nodesText, resendText, _ := strings.Cut(spec, "/")
	nodes, err := strconv.Atoi(nodesText)
	if err != nil {
		t.Fatalf("network spec %q: %v", spec, err)
	}
	resend, err := time.ParseDuration(resendText)
	if err != nil {
		t.Fatalf("network spec %q: %v", spec, err)
	}
	nw := mainlinetest.New(t, nodes, mainlinetest.WithResendDelay(resend))
	for _, a := range nw.Addrs() {
		fmt.Printf("dhtbench node %s\n", a)
	}
	fmt.Println("dhtbench ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 2 || f[0] != "kill" {
			t.Fatalf("unknown command %q", in.Text())
		}
		i, err := strconv.Atoi(f[1])
		if err != nil || i < 0 || i >= nw.Len() {
			t.Fatalf("bad node %q", f[1])
		}
		nw.Kill(i)
		fmt.Printf("dhtbench killed %d\n", i)
	}
}

// benchNetwork is a mainlinetest network running in a child process.
type benchNetwork struct {
	addrs  []string
	resend time.Duration
	stdin  io.WriteCloser
	lines  chan string // the child's "dhtbench ..." lines
}

func startBenchNetwork(tb testing.TB, nodes int, resend time.Duration) *benchNetwork {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDHTBenchNetworkProcess$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d/%s", dhtBenchNetworkEnv, nodes, resend))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting the network process: %v", err)
	}
	bn := &benchNetwork{resend: resend, stdin: stdin, lines: make(chan string, 64)}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(bn.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "dhtbench "); ok {
				bn.lines <- rest
			} else if line != "PASS" {
				fmt.Fprintf(os.Stderr, "network process: %s\n", line)
			}
		}
	}()
	tb.Cleanup(func() {
		stdin.Close()
		exited := make(chan error, 1)
		go func() {
			for range bn.lines {
			}
			<-readDone
			exited <- cmd.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil {
				tb.Errorf("network process: %v (a loopback guard violation fails it)", err)
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			tb.Errorf("network process did not exit")
		}
	})
	for {
		line := bn.next(tb, time.Minute)
		if line == "ready" {
			break
		}
		if a, ok := strings.CutPrefix(line, "node "); ok {
			bn.addrs = append(bn.addrs, a)
		}
	}
	if len(bn.addrs) != nodes {
		tb.Fatalf("network process reported %d nodes, want %d", len(bn.addrs), nodes)
	}
	return bn
}

func (bn *benchNetwork) next(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	select {
	case line, ok := <-bn.lines:
		if !ok {
			tb.Fatal("network process exited")
		}
		return line
	case <-time.After(timeout):
		tb.Fatal("network process did not answer")
	}
	return ""
}

func (bn *benchNetwork) kill(tb testing.TB, i int) {
	tb.Helper()
	if _, err := fmt.Fprintf(bn.stdin, "kill %d\n", i); err != nil {
		tb.Fatalf("network process: %v", err)
	}
	if line, want := bn.next(tb, time.Minute), fmt.Sprintf("killed %d", i); line != want {
		tb.Fatalf("network process said %q, want %q", line, want)
	}
}

// ---------------------------------------------------------------------
// The two clients.

// newBenchClient starts our passive client with the options
// mainlinetest.Network.ClientOptions gives.
func newBenchClient(guard *mainlinetest.Guard, bn *benchNetwork) (*mainline.DHT, error) {
	c, err := guard.Listen()
	if err != nil {
		return nil, err
	}
	d, err := mainline.New(
		mainline.WithConn(c),
		mainline.WithBootstrap(bn.addrs...),
		mainline.WithResolver(guard),
		mainline.WithResendDelay(bn.resend),
		mainline.WithSendBudget(0, 0),
		mainline.WithRefreshInterval(0),
	)
	if err != nil {
		c.Close()
	}
	return d, err
}

// newGetputServer starts the baseline: a raw anacrolix server with the
// library's defaults except what must differ on a loopback test network,
// all of which our client gets too: a guarded socket, the nodes as numeric
// starting nodes, passive, its own unlimited send limiter and the
// network's resend delay.
func newGetputServer(guard *mainlinetest.Guard, bn *benchNetwork, logger alog.Logger) (*dht.Server, error) {
	starting := make([]dht.Addr, 0, len(bn.addrs))
	for _, a := range bn.addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return nil, err
		}
		starting = append(starting, dht.NewAddr(net.UDPAddrFromAddrPort(ap)))
	}
	c, err := guard.Listen()
	if err != nil {
		return nil, err
	}
	sc := dht.NewDefaultServerConfig()
	sc.Conn = c
	sc.StartingNodes = func() ([]dht.Addr, error) { return starting, nil }
	sc.Passive = true
	sc.SendLimiter = rate.NewLimiter(rate.Inf, 0)
	resend := bn.resend
	sc.QueryResendDelay = func() time.Duration { return resend }
	sc.Logger = logger
	s, err := dht.NewServer(sc)
	if err != nil {
		c.Close()
	}
	return s, err
}

// warnCounter counts the library's warnings (getput.Put logs each put a
// node refused or never answered, and returns nil regardless).
type warnCounter struct {
	mu    sync.Mutex
	n     int
	first string
}

func (w *warnCounter) Handle(r alog.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		w.first = r.Msg.String()
	}
	w.n++
}

func (w *warnCounter) take() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, first := w.n, w.first
	w.n, w.first = 0, ""
	return n, first
}

func (w *warnCounter) logger() alog.Logger {
	l := alog.NewLogger("getput")
	l.SetHandlers(w)
	return l.WithFilterLevel(alog.Warning)
}

type benchKey struct {
	sk     *pkarrclient.SecretKey
	pub    pkarrclient.PublicKey
	target bep44.Target
	latest *pkarrclient.SignedPacket // the last packet published under it
}

func newBenchKeys(tb testing.TB, n int) []*benchKey {
	keys := make([]*benchKey, n)
	for i := range keys {
		sk, err := pkarrclient.GenerateSecretKey(nil)
		if err != nil {
			tb.Fatal(err)
		}
		pub := sk.PublicKey()
		keys[i] = &benchKey{sk: sk, pub: pub, target: sha1.Sum(pub[:])}
	}
	return keys
}

// benchStamper hands out strictly increasing timestamps, shared by both
// implementations: they publish under the same keys in turn, and the
// network refuses anything not newer than what it holds.
type benchStamper struct {
	mu sync.Mutex
	ts pkarrclient.Timestamp
}

func (s *benchStamper) sign(tb testing.TB, k *benchKey) *pkarrclient.SignedPacket {
	s.mu.Lock()
	if s.ts == 0 {
		s.ts = pkarrclient.TimestampFromTime(time.Now())
	}
	s.ts++
	ts := s.ts
	s.mu.Unlock()
	p, err := pkarrclient.NewBuilder().TXT("_iroh", 30, dhtBenchRelay).Timestamp(ts).Sign(k.sk)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// getputItem is p as the bep44.Put that getput.Put sends: v the raw DNS
// bytes, k the key, seq the timestamp, our signature unchanged, no cas.
func getputItem(p *pkarrclient.SignedPacket) bep44.Put {
	k := [32]byte(p.PublicKey())
	put := bep44.Put{V: p.DNS(), K: &k, Seq: int64(p.Timestamp())}
	copy(put.Sig[:], p.Signature())
	return put
}

// checkGetputResult says what is wrong with a getput.Get answer for k,
// or "" if it is k's latest packet.
func checkGetputResult(k *benchKey, res getput.GetResult) string {
	var v []byte
	if err := bencode.Unmarshal(res.V, &v); err != nil {
		return "value not a bencoded string"
	}
	if res.Seq != int64(k.latest.Timestamp()) {
		return "older packet"
	}
	if string(v) != string(k.latest.DNS()) {
		return "wrong value"
	}
	return ""
}

// ---------------------------------------------------------------------
// Latency.

// samples is one implementation's measurements in one cell.
type samples struct {
	impl     string
	d        []time.Duration
	failures int
	notes    map[string]int // counted: failures and oddities
	info     []string       // figures, printed as they are
}

func newSamples(impl string) *samples { return &samples{impl: impl, notes: map[string]int{}} }

func (s *samples) add(d time.Duration) { s.d = append(s.d, d) }

func (s *samples) fail(note string) {
	s.failures++
	s.notes[note]++
}

// pct is the nearest-rank percentile.
func (s *samples) pct(p float64) time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	d := slices.Sorted(slices.Values(s.d))
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[max(i, 0)]
}

func (s *samples) max() time.Duration { return slices.Max(s.d) }

func (s *samples) noteText() string {
	if len(s.notes) == 0 && len(s.info) == 0 {
		return "—"
	}
	parts := slices.Clone(s.info)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.notes {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%d× %s", s.notes[k], k))
	}
	return strings.Join(parts, "; ")
}

func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// cell is one network state and operation, with every implementation's
// samples; base is the one the others are compared against.
type cell struct {
	network string
	op      string
	base    *samples
	others  []*samples // getput first
	dead    bool
}

func (c *cell) print() {
	for _, s := range append([]*samples{c.base}, c.others...) {
		ratio := "—"
		if s != c.base && c.base.pct(95) > 0 {
			ratio = fmt.Sprintf("**%.1f×**", float64(s.pct(95))/float64(c.base.pct(95)))
		}
		fmt.Printf("| %s | %s | %s | %d | %s | %s | %s | %s | %s |\n",
			c.network, c.op, s.impl, len(s.d), fmtDur(s.pct(50)), fmtDur(s.pct(95)), fmtDur(s.max()),
			s.noteText(), ratio)
	}
}

func TestDHTBench(t *testing.T) {
	if os.Getenv(dhtBenchEnv) != "1" {
		t.Skip("set " + dhtBenchEnv + "=1 to run the DHT latency and memory benchmarks (takes minutes)")
	}
	runs := envList(t, dhtBenchRunsEnv, "100ms:200,2s:50")
	sizes := envList(t, dhtBenchNodesEnv, "10,30")
	clients := 100
	if v := os.Getenv(dhtBenchClientsEnv); v != "" {
		var err error
		if clients, err = strconv.Atoi(v); err != nil || clients < 1 {
			t.Fatalf("%s=%q", dhtBenchClientsEnv, v)
		}
	}
	fmt.Printf("\n%s %s/%s, %d CPUs, GOMAXPROCS %d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), runtime.GOMAXPROCS(0))

	for _, run := range runs {
		resendText, nText, ok := strings.Cut(run, ":")
		resend, err := time.ParseDuration(resendText)
		n, err2 := strconv.Atoi(nText)
		if !ok || err != nil || err2 != nil || n < 1 {
			t.Fatalf("%s: %q is not resend:samples", dhtBenchRunsEnv, run)
		}
		t.Run("resend="+resendText, func(t *testing.T) {
			fmt.Printf("\nResend delay %v (clients and nodes), %d samples per cell per implementation, %d keys.\n\n",
				resend, n, min(dhtBenchKeys, n))
			fmt.Println("| network | operation | implementation | n | p50 | p95 | max | notes, failures | ÷ pkarrclient at p95 |")
			fmt.Println("|---|---|---|---|---|---|---|---|---|")
			var cells []*cell
			var extra []string
			for _, size := range sizes {
				nodes, err := strconv.Atoi(size)
				if err != nil || nodes < 2 {
					t.Fatalf("%s: %q", dhtBenchNodesEnv, size)
				}
				c, e := benchLatency(t, nodes, resend, n)
				cells, extra = append(cells, c...), append(extra, e...)
			}
			fmt.Println()
			for _, e := range extra {
				fmt.Println("- " + e)
			}
			for _, c := range cells {
				if c.op != "resolve" {
					continue
				}
				ours, gp := c.base, c.others[0]
				ratio := float64(gp.pct(95)) / float64(ours.pct(95))
				if c.dead {
					fmt.Printf("- %s, resend %v: getput.Get p95 / first-value p95 = %.1f× (goal ≥ 5×): %s\n",
						c.network, resend, ratio, metText(ratio >= 5))
				} else {
					fmt.Printf("- %s, resend %v: first-value p95 %s vs getput.Get p95 %s (goal: never slower): %s\n",
						c.network, resend, fmtDur(ours.pct(95)), fmtDur(gp.pct(95)), metText(ours.pct(95) <= gp.pct(95)))
				}
			}
		})
	}

	t.Run("memory", func(t *testing.T) {
		fmt.Printf("\nMemory per passive client after its bootstrap: %d clients running together (started four at a time), resend %v.\n\n",
			clients, dhtBenchFixedResend)
		fmt.Println("| network | client | routing table | live heap (HeapAlloc) | HeapInuse | allocated during start+bootstrap (TotalAlloc) | goroutines |")
		fmt.Println("|---|---|---|---|---|---|---|")
		for _, size := range sizes {
			nodes, _ := strconv.Atoi(size)
			benchMemory(t, nodes, clients)
		}
	})
}

func metText(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**NOT met**"
}

func envList(t *testing.T, name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

// benchLatency measures every cell on one network: publish and resolve
// with all nodes live, then with 30% of them killed after publishing. It
// also returns findings that are not latencies, as sentences.
func benchLatency(t *testing.T, nodes int, resend time.Duration, n int) ([]*cell, []string) {
	bn := startBenchNetwork(t, nodes, resend)
	guard := &mainlinetest.Guard{}
	defer guard.Check(t)
	ctx := context.Background()

	ours, err := newBenchClient(guard, bn)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	warns := &warnCounter{}
	gp, err := newGetputServer(guard, bn, warns.logger())
	if err != nil {
		t.Fatal(err)
	}
	defer gp.Close()
	if _, err := ours.Bootstrap(ctx); err != nil {
		t.Fatalf("our client's bootstrap: %v", err)
	}
	if _, err := gp.BootstrapContext(ctx); err != nil {
		t.Fatalf("getput client's bootstrap: %v", err)
	}
	tables := fmt.Sprintf("%d nodes, resend %v: routing tables after one bootstrap: pkarrclient %d nodes, getput's client %d.",
		nodes, resend, ours.RoutingTableSize(), gp.NumNodes())

	alive := make([]bool, nodes)
	for i := range alive {
		alive[i] = true
	}
	// holders asks every live node directly, with the getput client's
	// single-query Get, whether it holds packet p: how many nodes a
	// publish really reached, whatever the publisher believes.
	holders := func(p *pkarrclient.SignedPacket) int {
		pub := p.PublicKey()
		target := sha1.Sum(pub[:])
		var mu sync.Mutex
		var wg sync.WaitGroup
		count := 0
		for i, a := range bn.addrs {
			if !alive[i] {
				continue
			}
			ap := netip.MustParseAddrPort(a)
			wg.Go(func() {
				res := gp.Get(ctx, dht.NewAddr(net.UDPAddrFromAddrPort(ap)), target, nil, dht.QueryRateLimiting{})
				if res.Err != nil || res.Reply.R == nil || res.Reply.R.Seq == nil {
					return
				}
				if *res.Reply.R.Seq == int64(p.Timestamp()) && res.Reply.R.K == [32]byte(p.PublicKey()) {
					mu.Lock()
					count++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return count
	}

	keys := newBenchKeys(t, min(dhtBenchKeys, n))
	stamper := &benchStamper{}
	gpCtx := func() (context.Context, context.CancelFunc) {
		c, cancel := context.WithTimeout(ctx, dhtBenchOpTimeout)
		return alog.ContextWithLogger(c, warns.logger()), cancel
	}

	publish := func(network string, dead bool) *cell {
		c := &cell{network: network, op: "publish", dead: dead,
			base: newSamples("pkarrclient `Publish`"), others: []*samples{newSamples("`getput.Put`")}}
		stored, oursHeld, gpHeld := 0, 0, 0
		ops := []func(k *benchKey){
			func(k *benchKey) {
				p := stamper.sign(t, k)
				start := time.Now()
				rcpt, err := ours.Publish(ctx, p)
				c.base.add(time.Since(start))
				if err != nil {
					c.base.fail("error: " + err.Error())
					return
				}
				stored += rcpt.DHTNodes
				k.latest = p
				oursHeld += holders(p)
			},
			func(k *benchKey) {
				p := stamper.sign(t, k)
				put := getputItem(p)
				cctx, cancel := gpCtx()
				warns.take()
				start := time.Now()
				_, err := getput.Put(cctx, krpc.ID(k.target), gp, nil, func(int64) bep44.Put { return put })
				c.others[0].add(time.Since(start))
				cancel()
				if err != nil {
					c.others[0].fail("error: " + err.Error())
					return
				}
				if w, first := warns.take(); w > 0 {
					c.others[0].notes[fmt.Sprintf("ops logging put failures (nil error), e.g. %q", first)]++
				}
				k.latest = p
				gpHeld += holders(p)
			},
		}
		for i := range n {
			k := keys[i%len(keys)]
			for j := range ops {
				ops[(i+j)%len(ops)](k)
			}
		}
		if m := len(c.others[0].d) - c.others[0].failures; m > 0 {
			c.others[0].info = append(c.others[0].info, fmt.Sprintf("held afterwards by %.1f nodes on average (reports no count)", float64(gpHeld)/float64(m)))
		}
		if m := len(c.base.d) - c.base.failures; m > 0 {
			c.base.info = append(c.base.info, fmt.Sprintf("held afterwards by %.1f nodes on average (%.1f acknowledged)",
				float64(oursHeld)/float64(m), float64(stored)/float64(m)))
		}
		// Every key must now resolve to the last packet published under it.
		for _, k := range keys {
			p, err := ours.Resolve(ctx, pkarrclient.Query{Key: k.pub, MostRecent: true})
			if err != nil || !p.Equal(k.latest) {
				c.base.notes["keys whose last publish is not what a most-recent resolve finds afterwards"]++
			}
		}
		return c
	}

	resolve := func(network string, dead bool) *cell {
		c := &cell{network: network, op: "resolve", dead: dead,
			base: newSamples("pkarrclient first value"),
			others: []*samples{newSamples("`getput.Get`"),
				newSamples("pkarrclient most recent (reference)")}}
		first, gpGet, recent := c.base, c.others[0], c.others[1]
		ops := []func(k *benchKey){
			func(k *benchKey) {
				start := time.Now()
				p, err := ours.Resolve(ctx, pkarrclient.Query{Key: k.pub})
				first.add(time.Since(start))
				switch {
				case err != nil:
					first.fail("error: " + err.Error())
				case p.PublicKey() != k.pub:
					first.fail("wrong key")
				case !p.Equal(k.latest):
					first.notes["older packet (first value is any valid one)"]++
				}
			},
			func(k *benchKey) {
				cctx, cancel := gpCtx()
				start := time.Now()
				res, _, err := getput.Get(cctx, k.target, gp, nil, nil)
				gpGet.add(time.Since(start))
				cancel()
				switch {
				case err != nil && res.Seq != math.MinInt64:
					gpGet.fail(fmt.Sprintf("returned %q while holding a value", err))
				case err != nil:
					gpGet.fail("error: " + err.Error())
				default:
					if bad := checkGetputResult(k, res); bad != "" {
						gpGet.fail(bad)
					}
				}
			},
			func(k *benchKey) {
				start := time.Now()
				p, err := ours.Resolve(ctx, pkarrclient.Query{Key: k.pub, MostRecent: true})
				recent.add(time.Since(start))
				switch {
				case err != nil:
					recent.fail("error: " + err.Error())
				case !p.Equal(k.latest):
					recent.fail("not the latest packet")
				}
			},
		}
		for i := range n {
			k := keys[i%len(keys)]
			for j := range ops {
				ops[(i+j)%len(ops)](k)
			}
		}
		return c
	}

	// deadline resolves the same keys with a deadline shorter than the
	// resend delay: our first-value lookup answers well within it, while
	// getput.Get, which returns only when its traversal stalls, hits it
	// and returns ctx.Err() even when it already holds a value.
	deadline := func(network string) string {
		limit := resend / 2
		m := min(n, 20)
		var oursOK, gpOK, gpHolding, gpEmpty int
		for i := range m {
			k := keys[i%len(keys)]
			cctx, cancel := context.WithTimeout(ctx, limit)
			if p, err := ours.Resolve(cctx, pkarrclient.Query{Key: k.pub}); err == nil && p.PublicKey() == k.pub {
				oursOK++
			}
			cancel()
			cctx, cancel = context.WithTimeout(ctx, limit)
			res, _, err := getput.Get(alog.ContextWithLogger(cctx, warns.logger()), k.target, gp, nil, nil)
			cancel()
			switch {
			case err == nil:
				gpOK++
			case res.Seq != math.MinInt64:
				gpHolding++
			default:
				gpEmpty++
			}
		}
		return fmt.Sprintf("%s, resend %v, each resolve given a %v deadline (%d keys): pkarrclient first value "+
			"answered %d of %d; getput.Get answered %d, returned the deadline error while already holding "+
			"a verified value %d times, and with nothing %d times.",
			network, resend, limit, m, oursOK, m, gpOK, gpHolding, gpEmpty)
	}

	var cells []*cell
	emit := func(c *cell) {
		c.print()
		cells = append(cells, c)
	}
	live := fmt.Sprintf("%d nodes, all live", nodes)
	emit(publish(live, false))
	// getput.Put reaches about half the nodes ours does (it puts to
	// IPv4-mapped duplicates), so a key it published last is newest on
	// fewer nodes. Republish every key once, untimed, so that all the
	// closest nodes hold the same latest packet for the resolve cells.
	for _, k := range keys {
		p := stamper.sign(t, k)
		if _, err := ours.Publish(ctx, p); err != nil {
			t.Fatalf("republishing: %v", err)
		}
		k.latest = p
	}
	emit(resolve(live, false))

	killed := nodes * dhtBenchDeadPercent / 100
	rng := rand.New(rand.NewPCG(uint64(nodes), 30))
	for _, i := range rng.Perm(nodes)[:killed] {
		bn.kill(t, i)
		alive[i] = false
	}
	dead := fmt.Sprintf("%d nodes, %d dead", nodes, killed)
	emit(resolve(dead, true))
	extra := []string{tables, deadline(dead)}
	emit(publish(dead, true))
	return cells, extra
}

// ---------------------------------------------------------------------
// Memory.

// benchMemory starts count passive clients of each kind on one network
// and prints what each costs once bootstrapped.
func benchMemory(t *testing.T, nodes, count int) {
	bn := startBenchNetwork(t, nodes, dhtBenchFixedResend)
	guard := &mainlinetest.Guard{}
	defer guard.Check(t)

	type client struct {
		table func() int
		close func()
	}
	measure := func(name string, start func() (client, error)) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()

		cs := make([]client, 0, count)
		defer func() {
			for _, c := range cs {
				c.close()
			}
		}()
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		// A few at a time: a burst of a hundred bootstraps on two cores
		// delays answers past the 100 ms resend delay, and a passive
		// client keeps whatever table its one bootstrap found.
		sem := make(chan struct{}, 4)
		for range count {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				c, err := start()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				cs = append(cs, c)
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%s: %d clients failed, first: %v", name, len(errs), errs[0])
		}
		// Let queries that outlived a bootstrap time out and finish.
		time.Sleep(3 * bn.resend)
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		g1 := runtime.NumGoroutine()
		table := 0
		for _, c := range cs {
			table += c.table()
		}
		per := func(a, b uint64) string {
			return fmt.Sprintf("%.1f KiB", (float64(a)-float64(b))/float64(count)/1024)
		}
		fmt.Printf("| %d nodes | %s | %.1f nodes | %s | %s | %s | %.2f |\n", nodes, name,
			float64(table)/float64(count), per(after.HeapAlloc, before.HeapAlloc),
			per(after.HeapInuse, before.HeapInuse), per(after.TotalAlloc, before.TotalAlloc),
			float64(g1-g0)/float64(count))
	}

	measure("mainline.DHT (New; its own background bootstrap)", func() (client, error) {
		d, err := newBenchClient(guard, bn)
		if err != nil {
			return client{}, err
		}
		// New bootstraps in the background; wait for the table to fill.
		deadline := time.Now().Add(5 * time.Second)
		for d.RoutingTableSize() < min(nodes, 8) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return client{table: d.RoutingTableSize, close: func() { d.Close() }}, nil
	})
	measure("raw anacrolix `dht.Server` (getput's client; `BootstrapContext`)", func() (client, error) {
		s, err := newGetputServer(guard, bn, (&warnCounter{}).logger())
		if err != nil {
			return client{}, err
		}
		if _, err := s.BootstrapContext(context.Background()); err != nil {
			s.Close()
			return client{}, err
		}
		return client{table: s.NumNodes, close: s.Close}, nil
	})
}

// ---------------------------------------------------------------------
// Allocations and time per operation (go test -bench).

// benchClients starts a live network and both clients, bootstrapped, with
// one key published.
func benchClients(b *testing.B, nodes int) (*mainline.DHT, *dht.Server, *benchKey, *benchStamper) {
	bn := startBenchNetwork(b, nodes, dhtBenchFixedResend)
	guard := &mainlinetest.Guard{}
	b.Cleanup(func() { guard.Check(b) })
	ours, err := newBenchClient(guard, bn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ours.Close() })
	gp, err := newGetputServer(guard, bn, (&warnCounter{}).logger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gp.Close)
	ctx := context.Background()
	if _, err := ours.Bootstrap(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := gp.BootstrapContext(ctx); err != nil {
		b.Fatal(err)
	}
	k := newBenchKeys(b, 1)[0]
	stamper := &benchStamper{}
	p := stamper.sign(b, k)
	if _, err := ours.Publish(ctx, p); err != nil {
		b.Fatal(err)
	}
	k.latest = p
	return ours, gp, k, stamper
}

func BenchmarkDHTResolve(b *testing.B) {
	ours, gp, k, _ := benchClients(b, 10)
	ctx := context.Background()
	b.Run("impl=pkarrclient", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ours.Resolve(ctx, pkarrclient.Query{Key: k.pub}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=pkarrclient-most-recent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ours.Resolve(ctx, pkarrclient.Query{Key: k.pub, MostRecent: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=getput", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cctx, cancel := context.WithTimeout(ctx, dhtBenchOpTimeout)
			res, _, err := getput.Get(cctx, k.target, gp, nil, nil)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			if bad := checkGetputResult(k, res); bad != "" {
				b.Fatal(bad)
			}
		}
	})
}

func BenchmarkDHTPublish(b *testing.B) {
	ours, gp, k, stamper := benchClients(b, 10)
	ctx := context.Background()
	b.Run("impl=pkarrclient", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			p := stamper.sign(b, k)
			b.StartTimer()
			if _, err := ours.Publish(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=getput", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			put := getputItem(stamper.sign(b, k))
			b.StartTimer()
			cctx, cancel := context.WithTimeout(ctx, dhtBenchOpTimeout)
			_, err := getput.Put(cctx, krpc.ID(k.target), gp, nil, func(int64) bep44.Put { return put })
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
