// Package meshbench measures, side by side and in one run, how long peers
// that start together take to find each other and to connect into a full
// mesh: phrasemeet with the library's defaults, go-libp2p-kad-dht routing
// discovery on a local DHT, and phrasemeet's can-sync profile on its real
// schedule. Everything runs in this process on loopback, with a
// round-trip time injected; nothing reaches the internet. The command is
// ../mesh; see ../README.md for what is measured and how.
package meshbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The systems compared.
const (
	sysOurs    = "ours"
	sysKad     = "kad"
	sysCanSync = "cansync"
)

var systemLabel = map[string]string{
	sysOurs:    "phrasemeet, library defaults",
	sysKad:     "go-libp2p-kad-dht, FindPeers every 1 s",
	sysCanSync: "phrasemeet can-sync profile (scan 15 s, republish 60 s)",
}

// runConfig is one measured run.
type runConfig struct {
	n       int
	rtt     time.Duration
	timeout time.Duration
	limits  limitModel
	log     io.Writer
}

// result is one run's outcome. A zero time is a goal the run did not
// reach within its timeout.
type result struct {
	found, mesh time.Duration
	counts      counts
	counted     bool // counts are meaningful (the phrasemeet systems)
}

type options struct {
	ns      []int
	runs    int
	rtt     time.Duration
	timeout time.Duration
	limits  []limitModel
	systems []string
}

func parseFlags(args []string, stderr io.Writer) (options, string, error) {
	fs := flag.NewFlagSet("mesh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("n", "2,8,20", "peer counts to measure, comma-separated")
	runs := fs.Int("runs", 5, "runs of each system at each peer count")
	rtt := fs.Duration("rtt", 50*time.Millisecond, "round-trip time injected into every peer's HTTP exchanges with the relay and every libp2p connection it dials")
	timeout := fs.Duration("timeout", 60*time.Second, "how long one run may take; a run that reaches neither goal by then is reported unfinished")
	limits := fs.String("limits", "pkarr", "the relay's per-IP limit model, comma-separated for several tables: n0 (PUT burst 2, then 1 per 4 s), pkarr (every request 2/s, burst 10), off")
	systems := fs.String("systems", "ours,kad,cansync", "systems to run: ours (phrasemeet defaults), kad (go-libp2p-kad-dht), cansync (can-sync profile)")
	if err := fs.Parse(args); err != nil {
		return options{}, "", err
	}
	if fs.NArg() > 0 {
		return options{}, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var o options
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 500 {
			return options{}, "", fmt.Errorf("-n: %q is not a peer count from 2 to 500", s)
		}
		o.ns = append(o.ns, n)
	}
	for _, s := range strings.Split(*limits, ",") {
		m, err := parseLimitModel(strings.TrimSpace(s))
		if err != nil {
			return options{}, "", fmt.Errorf("-limits: %w", err)
		}
		o.limits = append(o.limits, m)
	}
	for _, s := range strings.Split(*systems, ",") {
		s = strings.TrimSpace(s)
		if _, ok := systemLabel[s]; !ok {
			return options{}, "", fmt.Errorf("-systems: unknown system %q: want ours, kad or cansync", s)
		}
		o.systems = append(o.systems, s)
	}
	if *runs < 1 || *rtt < 0 || *timeout <= 0 {
		return options{}, "", errors.New("-runs must be at least 1, -rtt not negative, -timeout positive")
	}
	o.runs, o.rtt, o.timeout = *runs, *rtt, *timeout
	cmd := fmt.Sprintf("go run ./mesh -n %s -runs %d -rtt %v -timeout %v -limits %s -systems %s", *ns, *runs, *rtt, *timeout, *limits, *systems)
	return o, cmd, nil
}

// Run parses args (the flags of the mesh command), runs the benchmark and
// writes its Markdown report to stdout and its progress to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, cmd, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	sec, kdf, err := newSecrets()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# Mesh benchmark\n\n")
	fmt.Fprintf(stdout, "`cd bench && %s`\n\n", cmd)
	fmt.Fprintf(stdout, "%s, %s/%s, %d CPUs (GOMAXPROCS %d), %s.\n", runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(stdout, "All peers of a run start together; times are from the start of announcing to (a) every peer's discovery "+
		"having reported every other peer (found) and (b) every pair of hosts connected (mesh). Round-trip time %v, injected into every "+
		"peer's HTTP exchanges with the relay (its own client and transport, its own X-Forwarded-For) and every libp2p connection dialed. "+
		"The passphrase group was derived once (Argon2id, 64 MiB: %v) and shared by every phrasemeet peer of every run; the clock starts after it. "+
		"Each run has a fresh relay. p95 is the nearest rank (with 5 runs, the slowest); an unfinished run counts as slower than any. "+
		"GET and PUT are per peer, counted at the relay from the start to the end of the run; 429 is the total over the runs, then per run.\n",
		o.rtt, kdf.Round(time.Millisecond))

	for _, lim := range o.limits {
		fmt.Fprintf(stdout, "\n## Relay limits: %s\n\n", lim)
		all := map[int]map[string][]result{}
		for _, n := range o.ns {
			all[n] = map[string][]result{}
			for _, sys := range o.systems {
				for r := range o.runs {
					if err := ctx.Err(); err != nil {
						return err
					}
					cfg := runConfig{n: n, rtt: o.rtt, timeout: o.timeout, limits: lim, log: stderr}
					var res result
					var err error
					switch sys {
					case sysOurs:
						res, err = phrasemeetRun(ctx, cfg, false, sec)
					case sysCanSync:
						res, err = phrasemeetRun(ctx, cfg, true, sec)
					case sysKad:
						res, err = kadRun(ctx, cfg)
					}
					if err != nil {
						return fmt.Errorf("%s, %d peers, run %d: %w", sys, n, r+1, err)
					}
					all[n][sys] = append(all[n][sys], res)
					fmt.Fprintf(stderr, "%s limits, %d peers, %s, run %d/%d: found %s, mesh %s%s\n", lim, n, sys, r+1, o.runs,
						showTime(res.found, o.timeout), showTime(res.mesh, o.timeout), showCounts(res, n))
				}
			}
		}
		writeTables(stdout, o, all)
	}
	return nil
}

// newSecrets makes a random passphrase for this invocation and derives
// its group once, returning how long the KDF took.
func newSecrets() (*secrets, time.Duration, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, 0, err
	}
	pass := []byte("bench " + hex.EncodeToString(b))
	began := time.Now()
	g, err := slotdiscovery.DeriveGroup(pass)
	if err != nil {
		return nil, 0, err
	}
	return &secrets{pass: pass, group: g}, time.Since(began), nil
}

func showTime(d, timeout time.Duration) string {
	if d == 0 {
		return "unfinished (> " + timeout.String() + ")"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func showCounts(r result, n int) string {
	if !r.counted {
		return ""
	}
	return fmt.Sprintf("; %.1f GET, %.1f PUT per peer, %d answered 429", float64(r.counts.Gets)/float64(n), float64(r.counts.Puts)/float64(n), r.counts.TooMany)
}

// quantile is the nearest-rank quantile of the runs' times, unfinished
// ones (0) ranking above every finished one; +Inf when it falls on an
// unfinished run.
func quantile(ts []time.Duration, q float64) float64 {
	v := make([]float64, len(ts))
	for i, t := range ts {
		v[i] = math.Inf(1)
		if t > 0 {
			v[i] = t.Seconds()
		}
	}
	slices.Sort(v)
	k := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(k, 0), len(v)-1)]
}

type stats struct {
	foundMed, foundP95, meshMed, meshP95 float64
	unfoundRuns, unmeshRuns              int
	gets, puts                           float64 // per peer, mean over runs
	tooMany                              []int
	counted                              bool
}

func summarize(rs []result, n int) stats {
	var s stats
	var found, mesh []time.Duration
	for _, r := range rs {
		found, mesh = append(found, r.found), append(mesh, r.mesh)
		if r.found == 0 {
			s.unfoundRuns++
		}
		if r.mesh == 0 {
			s.unmeshRuns++
		}
		if r.counted {
			s.counted = true
			s.gets += float64(r.counts.Gets) / float64(n) / float64(len(rs))
			s.puts += float64(r.counts.Puts) / float64(n) / float64(len(rs))
			s.tooMany = append(s.tooMany, r.counts.TooMany)
		}
	}
	s.foundMed, s.foundP95 = quantile(found, .5), quantile(found, .95)
	s.meshMed, s.meshP95 = quantile(mesh, .5), quantile(mesh, .95)
	return s
}

func secs(v float64, timeout time.Duration) string {
	if math.IsInf(v, 1) {
		return "> " + fmt.Sprintf("%g", timeout.Seconds()) + " s"
	}
	return fmt.Sprintf("%.2f s", v)
}

// ratio is a ÷ b; where one side is unfinished the timeout bounds it:
// "> x" when ours did not finish (it took at least the timeout), "< x"
// when theirs did not.
func ratio(a, b float64, timeout time.Duration) string {
	t := timeout.Seconds()
	switch {
	case math.IsInf(a, 1) && math.IsInf(b, 1):
		return "n/a (both unfinished)"
	case math.IsInf(a, 1):
		return fmt.Sprintf("> %.2f (ours unfinished)", t/b)
	case math.IsInf(b, 1):
		return fmt.Sprintf("< %.2f (theirs unfinished)", a/t)
	case b == 0:
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func writeTables(w io.Writer, o options, all map[int]map[string][]result) {
	fmt.Fprintf(w, "| peers | system | found median | found p95 | mesh median | mesh p95 | unfinished (found / mesh) | GET / peer | PUT / peer | 429 |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	sum := map[int]map[string]stats{}
	for _, n := range o.ns {
		sum[n] = map[string]stats{}
		for _, sys := range o.systems {
			s := summarize(all[n][sys], n)
			sum[n][sys] = s
			var req string
			if s.counted {
				total := 0
				for _, t := range s.tooMany {
					total += t
				}
				per := make([]string, len(s.tooMany))
				for i, t := range s.tooMany {
					per[i] = strconv.Itoa(t)
				}
				req = fmt.Sprintf("%.1f | %.1f | %d (%s)", s.gets, s.puts, total, strings.Join(per, ", "))
			} else {
				req = "– | – | –"
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %d / %d of %d | %s |\n", n, systemLabel[sys],
				secs(s.foundMed, o.timeout), secs(s.foundP95, o.timeout), secs(s.meshMed, o.timeout), secs(s.meshP95, o.timeout),
				s.unfoundRuns, s.unmeshRuns, len(all[n][sys]), req)
		}
	}
	if !slices.Contains(o.systems, sysOurs) || len(o.systems) < 2 {
		return
	}
	fmt.Fprintf(w, "\nRatios, ours ÷ theirs (below 1: phrasemeet with its defaults is faster; an unfinished side counts as the timeout, so the ratio is a bound):\n\n")
	fmt.Fprintf(w, "| peers | versus | found median | found p95 | mesh median | mesh p95 |\n|---|---|---|---|---|---|\n")
	for _, n := range o.ns {
		ours := sum[n][sysOurs]
		for _, sys := range o.systems {
			if sys == sysOurs {
				continue
			}
			t := sum[n][sys]
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", n, systemLabel[sys],
				ratio(ours.foundMed, t.foundMed, o.timeout), ratio(ours.foundP95, t.foundP95, o.timeout),
				ratio(ours.meshMed, t.meshMed, o.timeout), ratio(ours.meshP95, t.meshP95, o.timeout))
		}
	}
}
