package slotsim_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/relaysim"
	"github.com/phrasemeet/discovery/internal/slotsim"
)

// The goals, each run for both profiles side by side. Every run
// of `go test` checks them on a few seeds; PHRASEMEET_SIM=1 runs the full
// report (more seeds, and the thousand-peer group), and
// PHRASEMEET_SIM_OUT=dir writes it as Markdown and the data of the
// plot, which the tool in tools/plots (a module of its own) draws:
//
//	PHRASEMEET_SIM=1 PHRASEMEET_SIM_OUT=/tmp/simout go test -run TestGoals -v -timeout 60m ./internal/slotsim/
//	go -C tools/plots run . /tmp/simout/slots.json /tmp/simout/slots.png

var profiles = []slotsim.Profile{slotsim.Default, slotsim.CanSync}

// full reports whether the full report was asked for.
func full() bool { return os.Getenv("PHRASEMEET_SIM") != "" }

// seeds is n in the full report, a few otherwise.
func seeds(n, quick int) int {
	if full() {
		return n
	}
	return quick
}

var n0 = net{Mode: relaysim.N0, RTT: 50 * time.Millisecond}

// goalSummary is one scenario's runs over several seeds.
type goalSummary struct {
	Goal, Name string
	Profile    slotsim.Profile
	Seeds      int
	Pairs      int
	Mutual     int
	Times      []time.Duration // every mutual pair's time, all seeds
	Evicted    int
	LostClaims int
	Collisions int
	FalseLost  int
	TooMany    int     // 429 answers
	Conflicts  int     // 409 answers
	SteadyGet  float64 // the highest peer's, per second
	SteadyPut  float64
	MeanGet    float64 // the mean over peers (the highest seed's)
	MeanPut    float64
	CrashLost  []time.Duration
	LeaveLost  []time.Duration
	MinKnown   int
	Connected  bool
	// Mesh is, per seed, the time from the first start until one peer of
	// every pair had found the other, which dials it: a full mesh of
	// connections. FoundAll is the time until every peer had found every
	// other. (-1: never within the run.)
	Mesh, FoundAll []time.Duration
}

func (s *goalSummary) add(o outcome) {
	s.Seeds++
	s.Pairs += o.Pairs
	s.Mutual += o.Mutual
	s.Times = append(s.Times, o.MutualTimes...)
	s.Evicted += o.Evicted
	s.LostClaims += o.LostClaims
	for _, st := range o.Stats {
		s.Collisions += st.Collisions
	}
	s.FalseLost += len(o.FalseLost)
	s.TooMany += o.Relay.Total.RateLimited
	s.Conflicts += o.Relay.Total.Conflicts
	s.SteadyGet = max(s.SteadyGet, o.SteadyGet)
	s.SteadyPut = max(s.SteadyPut, o.SteadyPut)
	s.MeanGet = max(s.MeanGet, o.MeanGet)
	s.MeanPut = max(s.MeanPut, o.MeanPut)
	found, mesh := time.Duration(-1), time.Duration(-1)
	if o.Pairs > 0 && o.Mutual == o.Pairs {
		found = o.MutualTimes[len(o.MutualTimes)-1]
	}
	if o.Pairs > 0 && o.Meshed == o.Pairs {
		mesh = o.MeshTimes[len(o.MeshTimes)-1]
	}
	s.Mesh = append(s.Mesh, mesh)
	s.FoundAll = append(s.FoundAll, found)
	s.CrashLost = append(s.CrashLost, o.CrashLost...)
	s.LeaveLost = append(s.LeaveLost, o.LeaveLost...)
	if o.Known != nil {
		k := slices.Min(o.Known)
		if s.Seeds == 1 || k < s.MinKnown {
			s.MinKnown = k
		}
		s.Connected = (s.Seeds == 1 || s.Connected) && o.Connected
	}
}

// seedQ returns the p-quantile of per-seed times (Mesh or FoundAll), a
// seed that never got there counting as longer than any (-1 when that is
// the quantile).
func seedQ(times []time.Duration, p float64) time.Duration {
	ms := slices.Clone(times)
	for i, m := range ms {
		if m < 0 {
			ms[i] = time.Duration(math.MaxInt64)
		}
	}
	slices.Sort(ms)
	if q := slotsim.Quantile(ms, p); q != time.Duration(math.MaxInt64) {
		return q
	}
	return -1
}

func (s *goalSummary) q(p float64) time.Duration {
	slices.Sort(s.Times)
	return slotsim.Quantile(s.Times, p)
}

// report collects the summaries of one `go test` run.
var report struct {
	sync.Mutex
	rows []*goalSummary
}

// run runs sc over seeds 1..n on netw for one profile and records it.
func run(t *testing.T, goal string, sc slotsim.Scenario, p slotsim.Profile, n int, netw net) *goalSummary {
	t.Helper()
	s := &goalSummary{Goal: goal, Name: sc.Name, Profile: p}
	for seed := 1; seed <= n; seed++ {
		sc.Profile, sc.Seed = p, uint64(seed)
		s.add(simulate(t, sc, netw))
	}
	report.Lock()
	report.rows = append(report.rows, s)
	report.Unlock()
	t.Logf("%s/%s: %d/%d pairs mutual, p50 %v p95 %v max %v; evicted %d, lost claims %d, collisions %d, false Lost %d, 429 %d, 409 %d; steady %.3f GET/s %.2f PUT/min (mean %.3f, %.2f)",
		sc.Name, p, s.Mutual, s.Pairs, d(s.q(.5)), d(s.q(.95)), d(s.q(1)), s.Evicted, s.LostClaims, s.Collisions, s.FalseLost,
		s.TooMany, s.Conflicts, s.SteadyGet, s.SteadyPut*60, s.MeanGet, s.MeanPut*60)
	return s
}

// d rounds a duration for a report (-1: none measured).
func d(x time.Duration) string {
	if x < 0 {
		return "–"
	}
	return x.Round(10 * time.Millisecond).String()
}

func TestGoals(t *testing.T) {
	t.Run("1-two-peers", func(t *testing.T) {
		sc := slotsim.Scenario{Name: "two peers within 1 s", Peers: 2, Start: time.Second, Duration: 90 * time.Second}
		for _, p := range profiles {
			s := run(t, "1", sc, p, 100, n0) // cheap: the quick run takes every seed too, so its p95 is not its maximum
			if p != slotsim.Default {
				continue
			}
			if s.Mutual != s.Pairs {
				t.Errorf("default: %d of %d pairs mutual", s.Mutual, s.Pairs)
			}
			if q := s.q(.95); q >= 3*time.Second {
				t.Errorf("default: p95 %v, goal under 3 s", q)
			}
		}
	})
	t.Run("2-twenty-peers", func(t *testing.T) {
		// Thirty minutes, so the steady rates are a long-run reading and
		// not dominated by the retries of the first republishes.
		sc := slotsim.Scenario{Name: "twenty peers within 5 s", Peers: 20, Start: 5 * time.Second, Duration: 30 * time.Minute}
		for _, p := range profiles {
			s := run(t, "2, 7", sc, p, seeds(20, 2), n0)
			if p != slotsim.Default {
				continue
			}
			if s.Mutual != s.Pairs || s.Evicted != 0 || s.LostClaims != 0 {
				t.Errorf("default: %d of %d pairs mutual, %d evicted, %d claims lost", s.Mutual, s.Pairs, s.Evicted, s.LostClaims)
			}
			if q := s.q(.95); q >= 10*time.Second {
				t.Errorf("default: p95 %v, goal under 10 s", q)
			}
			if s.TooMany != 0 {
				t.Errorf("default: %d answers 429 from the n0-like relay", s.TooMany)
			}
			if s.SteadyGet > 0.2 || s.SteadyPut > 1.0/60 {
				t.Errorf("default: steady %.3f GET/s and %.2f PUT/min per peer, budget 0.2 and 1", s.SteadyGet, s.SteadyPut*60)
			}
		}
	})
	t.Run("3-sixty-four-peers", func(t *testing.T) {
		// Twenty minutes, for a steady window long enough that one
		// retried write does not dominate a peer's PUT rate.
		sc := slotsim.Scenario{Name: "64 peers within 10 s", Peers: 64, Start: 10 * time.Second, Duration: 20 * time.Minute}
		for _, p := range profiles {
			s := run(t, "3", sc, p, seeds(5, 1), n0)
			if p == slotsim.Default && (s.Mutual != s.Pairs || s.Evicted != 0) {
				t.Errorf("default: %d of %d pairs mutual, %d evicted", s.Mutual, s.Pairs, s.Evicted)
			}
		}
	})
	t.Run("4-thousand-peers", func(t *testing.T) {
		if !full() {
			t.Skip("the thousand-peer group runs in the full report (PHRASEMEET_SIM=1)")
		}
		sc := slotsim.Scenario{Name: "1000 peers within 10 s", Peers: 1000, Start: 10 * time.Second,
			Duration: 20 * time.Minute, Checkpoint: 40 * time.Second}
		for _, p := range profiles {
			s := run(t, "4", sc, p, 1, n0)
			t.Logf("%s: at 30 s after the last start every peer knows at least %d live peers; knows-graph connected: %v", p, s.MinKnown, s.Connected)
			if p == slotsim.Default && (s.MinKnown < 16 || !s.Connected || s.SteadyGet > 0.2 || s.SteadyPut > 1.0/60) {
				t.Errorf("default: min known %d, connected %v, steady %.3f GET/s %.2f PUT/min", s.MinKnown, s.Connected, s.SteadyGet, s.SteadyPut*60)
			}
		}
	})
	t.Run("5-crash-and-leave", func(t *testing.T) {
		sc := slotsim.Scenario{Name: "20 peers, 3 crash and 3 leave at 4 min", Peers: 20, Start: 5 * time.Second,
			Duration: 9 * time.Minute, Crash: []int{0, 1, 2}, Leave: []int{3, 4, 5}, EndAt: 4 * time.Minute}
		for _, p := range profiles {
			s := run(t, "5", sc, p, seeds(10, 1), n0)
			t.Logf("%s: crashed peers Lost after %v, leaving peers after %v", p, s.CrashLost, s.LeaveLost)
			if p != slotsim.Default {
				continue
			}
			// Goal: a crash within three republish periods (70 s each), a
			// leave within one scan: in steady state a scan of this
			// group's seven slots takes about 45 s on the GET budget.
			for _, x := range s.CrashLost {
				if x < 0 || x > 3*70*time.Second {
					t.Errorf("default: a crashed peer was Lost after %v", x)
				}
			}
			// A leave is asserted within 90 s, a regression bound: one
			// steady scan of this group takes about 46 s, and a leave seen
			// at the scan after next is reported in BENCHMARKS.md as the
			// goal missed, not failed here, where one seed could flake.
			for _, x := range s.LeaveLost {
				if x < 0 || x > 90*time.Second {
					t.Errorf("default: a leaving peer was Lost after %v", x)
				}
			}
		}
	})
	t.Run("6-year-ahead", func(t *testing.T) {
		sc := slotsim.Scenario{Name: "20 peers, first slots stamped a year ahead", Peers: 20, Start: 5 * time.Second,
			Duration: 3 * time.Minute, Attack: true}
		for _, p := range profiles {
			s := run(t, "6", sc, p, seeds(5, 1), n0)
			if p == slotsim.Default && (s.Mutual != s.Pairs || s.Evicted != 0) {
				t.Errorf("default: %d of %d pairs mutual, %d evicted", s.Mutual, s.Pairs, s.Evicted)
			}
		}
	})
	t.Run("skew-loss-relay", func(t *testing.T) {
		for _, c := range []struct {
			sc   slotsim.Scenario
			netw net
		}{
			{slotsim.Scenario{Name: "20 peers, clocks ±30 s", Skew: 30 * time.Second}, n0},
			{slotsim.Scenario{Name: "20 peers, 5% loss"}, net{Mode: relaysim.N0, RTT: 50 * time.Millisecond, Loss: 0.05}},
			{slotsim.Scenario{Name: "20 peers, pkarr-relay"}, net{Mode: relaysim.PkarrRelay, RTT: 50 * time.Millisecond}},
			{slotsim.Scenario{Name: "20 peers, 200 ms RTT"}, net{Mode: relaysim.N0, RTT: 200 * time.Millisecond}},
		} {
			sc := c.sc
			sc.Peers, sc.Start, sc.Duration = 20, 5*time.Second, 4*time.Minute
			for _, p := range profiles {
				s := run(t, "", sc, p, seeds(5, 1), c.netw)
				if p == slotsim.Default && s.Mutual != s.Pairs {
					t.Errorf("%s, default: %d of %d pairs mutual", sc.Name, s.Mutual, s.Pairs)
				}
				// Every kind of request shares one budget under
				// pkarr-relay's single bucket (43 answers 429 in 5 runs
				// before issue 15).
				if p == slotsim.Default && s.TooMany != 0 {
					t.Errorf("%s, default: %d answers 429", sc.Name, s.TooMany)
				}
			}
		}
	})
	t.Run("8-start-together", func(t *testing.T) {
		// Issue 15: peers that all start at once, the library's defaults,
		// 50 ms RTT. The time that counts is the full mesh: from the
		// start until one peer of every pair found the other (it dials,
		// and the pair is connected), one figure per seed; the time until
		// everyone found everyone is the second figure.
		for _, c := range []struct {
			peers, full, quick int
			netw               net
			name               string
		}{
			{2, 100, 10, n0, "2 peers start together"},
			{8, 20, 3, n0, "8 peers start together"},
			{20, 20, 3, n0, "20 peers start together"},
			{50, 5, 1, n0, "50 peers start together"},
			{20, 5, 1, net{Mode: relaysim.PkarrRelay, RTT: 50 * time.Millisecond}, "20 peers start together, pkarr-relay"},
		} {
			sc := slotsim.Scenario{Name: c.name, Peers: c.peers, Duration: 90 * time.Second}
			s := run(t, "8", sc, slotsim.Default, seeds(c.full, c.quick), c.netw)
			meshes = append(meshes, s)
			t.Logf("%s: full mesh p50 %v p95 %v max %v; everyone found everyone p50 %v p95 %v max %v; over %d seeds; 429 %d", c.name,
				d(seedQ(s.Mesh, .5)), d(seedQ(s.Mesh, .95)), d(seedQ(s.Mesh, 1)),
				d(seedQ(s.FoundAll, .5)), d(seedQ(s.FoundAll, .95)), d(seedQ(s.FoundAll, 1)), s.Seeds, s.TooMany)
			// Asserted: what holds in the report; the time goals not met
			// (20 peers: median under 3 s, p95 under 5 s; 50 peers under
			// 8 s; 2 peers p95 under 1 s) are figures in BENCHMARKS.md.
			if s.Mutual != s.Pairs {
				t.Errorf("%s: %d of %d pairs mutual within %v", c.name, s.Mutual, s.Pairs, sc.Duration)
			}
			if s.TooMany != 0 {
				t.Errorf("%s: %d answers 429, goal none", c.name, s.TooMany)
			}
		}
	})
	// The report is written whether or not every goal held: a goal
	// missed is a figure to publish too.
	if dir := os.Getenv("PHRASEMEET_SIM_OUT"); dir != "" {
		writeReport(t, dir)
	}
}

// meshes are the start-together rows, for the report's mesh table.
var meshes []*goalSummary

// writeReport writes slots.md (a Markdown table) and slots.json (the
// time-to-discovery distributions, for tools/plots to draw) into dir.
func writeReport(t *testing.T, dir string) {
	report.Lock()
	defer report.Unlock()
	var b strings.Builder
	fmt.Fprintln(&b, "| goal | scenario | profile | seeds | pairs mutual | p50 | p95 | max | evicted | claims lost | false Lost | 429 | 409 | steady GET/s, max (mean) | steady PUT/min, max (mean) |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range report.rows {
		steady2 := func(v, mean float64, f string) string {
			if v == 0 {
				return "–"
			}
			return fmt.Sprintf(f+" ("+f+")", v, mean)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d/%d | %s | %s | %s | %d | %d | %d | %d | %d | %s | %s |\n",
			s.Goal, s.Name, s.Profile, s.Seeds, s.Mutual, s.Pairs, d(s.q(.5)), d(s.q(.95)), d(s.q(1)),
			s.Evicted, s.LostClaims, s.FalseLost, s.TooMany, s.Conflicts, steady2(s.SteadyGet, s.MeanGet, "%.3f"), steady2(s.SteadyPut*60, s.MeanPut*60, "%.2f"))
		if len(s.CrashLost)+len(s.LeaveLost) > 0 {
			slices.Sort(s.CrashLost)
			slices.Sort(s.LeaveLost)
			fmt.Fprintf(&b, "|  | ↳ Lost after a crash: max %s; after a leave: max %s | %s |  |  |  |  |  |  |  |  |  |  |  |  |\n",
				d(slotsim.Quantile(s.CrashLost, 1)), d(slotsim.Quantile(s.LeaveLost, 1)), s.Profile)
		}
		if s.MinKnown > 0 {
			fmt.Fprintf(&b, "|  | ↳ at 30 s after the last start every peer knows ≥ %d live peers; knows-graph connected: %v | %s |  |  |  |  |  |  |  |  |  |  |  |  |\n",
				s.MinKnown, s.Connected, s.Profile)
		}
	}
	if len(meshes) > 0 {
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "| start together | seeds | full mesh p50 | p95 | max | everyone found everyone p50 | p95 | max | pairs mutual | 429 |")
		fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|---|")
		for _, s := range meshes {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %d/%d | %d |\n", s.Name, s.Seeds,
				d(seedQ(s.Mesh, .5)), d(seedQ(s.Mesh, .95)), d(seedQ(s.Mesh, 1)),
				d(seedQ(s.FoundAll, .5)), d(seedQ(s.FoundAll, .95)), d(seedQ(s.FoundAll, 1)), s.Mutual, s.Pairs, s.TooMany)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slots.md"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var panels []slotsim.Panel
	for _, name := range []string{"two peers within 1 s", "twenty peers within 5 s", "64 peers within 10 s"} {
		pn := slotsim.Panel{Title: name, XMax: 5 * time.Minute}
		for _, s := range report.rows {
			if s.Name == name {
				pn.Series = append(pn.Series, slotsim.Series{Name: string(s.Profile), Times: s.Times, Total: s.Pairs})
			}
		}
		if len(pn.Series) > 0 {
			panels = append(panels, pn)
		}
	}
	var fig bytes.Buffer
	if err := slotsim.WriteFigure(&fig, slotsim.Figure{Width: 1500, Height: 520, Panels: panels}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slots.json"), fig.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s and %s", filepath.Join(dir, "slots.md"), filepath.Join(dir, "slots.json"))
}
