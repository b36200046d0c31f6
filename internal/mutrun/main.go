// Command mutrun measures how many deliberate bugs a package's tests catch.
//
// It makes gremlins' default mutants (comparisons negated or moved by one,
// + and - swapped, * and / swapped, % made *, ++ and -- swapped, a unary minus
// dropped) in the package's non-test Go files, builds the package's test
// binary once per mutant (through `go test -c -overlay`, so the tree is never
// edited) and runs every test of the package against it. A mutant is KILLED
// when a test fails, LIVED when all pass, TIMED OUT when the tests hang, NOT
// VIABLE when it does not compile, NOT COVERED when no test reaches its line
// (those are not run). Efficacy is KILLED / (KILLED + LIVED), as gremlins
// counts it.
//
// Why not gremlins itself: it runs the package's tests one after another in
// one process for every mutant. This package's tests take about a minute
// (most of it waiting on relays and timers, not CPU), so 550 mutants take
// hours. mutrun runs the same tests split into shards that run side by side
// (every test still runs, in its own top-level order within a shard), and
// stops a mutant's other shards as soon as one test fails.
//
// Usage (from the module root):
//
//	go run ./internal/mutrun -pkg ./slotdiscovery [-files a.go,b.go] [-workers 2] [-shards 4] [-json out.json]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Statuses, as gremlins spells them.
const (
	statusKilled     = "KILLED"
	statusLived      = "LIVED"
	statusTimedOut   = "TIMED OUT"
	statusNotViable  = "NOT VIABLE"
	statusNotCovered = "NOT COVERED"
)

type config struct {
	pkg        string
	files      []string
	workers    int
	shards     int
	factor     float64
	minTimeout time.Duration
	only       *regexp.Regexp
	jsonOut    string
	rebuild    bool
	confirm    bool
}

func main() {
	var cfg config
	var files, only string
	flag.StringVar(&cfg.pkg, "pkg", "", "package directory to mutate, e.g. ./slotdiscovery")
	flag.StringVar(&files, "files", "", "comma-separated file names in the package to mutate (default: every non-test .go file)")
	flag.IntVar(&cfg.workers, "workers", 2, "mutants built and tested at the same time")
	flag.IntVar(&cfg.shards, "shards", 4, "processes a mutant's tests are split over")
	flag.Float64Var(&cfg.factor, "timeout-factor", 4, "a shard times out after this many times its duration in the clean run")
	flag.DurationVar(&cfg.minTimeout, "min-timeout", 90*time.Second, "shortest shard timeout")
	flag.StringVar(&only, "only", "", "regexp on \"file:line\": run only the mutants whose position matches")
	flag.StringVar(&cfg.jsonOut, "json", "", "write every mutant with its status to this file")
	flag.BoolVar(&cfg.confirm, "confirm", false, "run each kill's failing test again, and the whole suite if it passes, so a flaky test cannot count as a kill")
	flag.BoolVar(&cfg.rebuild, "rebuild", false, "build a test binary per mutant instead of one schema binary for all (slow; to check the schema)")
	flag.Parse()
	if cfg.pkg == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if files != "" {
		cfg.files = strings.Split(files, ",")
	}
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mutrun: -only:", err)
			os.Exit(2)
		}
		cfg.only = re
	}
	if cfg.workers < 1 || cfg.shards < 1 {
		fmt.Fprintln(os.Stderr, "mutrun: -workers and -shards must be at least 1")
		os.Exit(2)
	}
	if _, err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mutrun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, out io.Writer) ([]Mutant, error) {
	start := time.Now()
	dir, err := filepath.Abs(cfg.pkg)
	if err != nil {
		return nil, err
	}
	importPath, err := goOutput(ctx, dir, "list", ".")
	if err != nil {
		return nil, err
	}
	if len(cfg.files) == 0 {
		list, err := goOutput(ctx, dir, "list", "-f", `{{join .GoFiles ","}}`, ".")
		if err != nil {
			return nil, err
		}
		cfg.files = strings.Split(list, ",")
	}
	tmp, err := os.MkdirTemp("", "mutrun-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	// The clean run: coverage, per-test durations, and proof that the
	// tests pass without any mutant (a flaky package gives false kills).
	fmt.Fprintf(out, "mutrun: clean run of %s\n", importPath)
	clean := filepath.Join(tmp, "clean.test")
	if msg, err := goRun(ctx, dir, "test", "-c", "-o", clean, "-cover", "-covermode=set", "-coverpkg", importPath, "."); err != nil {
		return nil, fmt.Errorf("building the clean test binary: %v\n%s", err, msg)
	}
	names, err := listTests(ctx, dir, clean)
	if err != nil {
		return nil, err
	}
	profile := filepath.Join(tmp, "cover.out")
	durations, err := cleanRun(ctx, dir, clean, names, profile)
	if err != nil {
		return nil, err
	}
	covered, err := readCoverage(profile, importPath)
	if err != nil {
		return nil, err
	}
	shards := makeShards(names, durations, cfg.shards)
	timeouts := make([]time.Duration, len(shards))
	for i, s := range shards {
		var sum time.Duration
		for _, n := range s {
			sum += durations[n]
		}
		timeouts[i] = max(cfg.minTimeout, time.Duration(float64(sum)*cfg.factor))
	}
	fmt.Fprintf(out, "mutrun: %d tests in %d shards, clean run %s\n", len(names), len(shards), time.Since(start).Round(time.Second))

	var mutants []Mutant
	sources := map[string][]byte{}
	for _, f := range cfg.files {
		src, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		sources[f] = src
		ms, err := findMutants(f, src)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if cfg.only != nil && !cfg.only.MatchString(fmt.Sprintf("%s:%d", m.File, m.Line)) {
				continue
			}
			m.ID = len(mutants) + 1
			if !covered.covers(m.File, m.Line, m.Col) {
				m.Status = statusNotCovered
			}
			mutants = append(mutants, m)
		}
	}

	// The schema binary: every covered mutant in one build, switched on at
	// run time; it must pass, with no mutant active, as the clean run did.
	var schemaBin string
	hosted := map[int]bool{}
	if !cfg.rebuild {
		var covered []Mutant
		for _, m := range mutants {
			if m.Status == "" {
				covered = append(covered, m)
			}
		}
		sch, err := buildSchema(ctx, dir, covered)
		if err != nil {
			return nil, err
		}
		hosted = sch.hosted
		sdir := filepath.Join(tmp, "schema")
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return nil, err
		}
		replace := map[string]string{}
		for name, b := range sch.files {
			if err := os.WriteFile(filepath.Join(sdir, name), b, 0o644); err != nil {
				return nil, err
			}
			replace[filepath.Join(dir, name)] = filepath.Join(sdir, name)
		}
		ov, _ := json.Marshal(map[string]any{"Replace": replace})
		ovFile := filepath.Join(sdir, "overlay.json")
		if err := os.WriteFile(ovFile, ov, 0o644); err != nil {
			return nil, err
		}
		schemaBin = filepath.Join(sdir, "pkg.test")
		if msg, err := goRun(ctx, dir, "test", "-c", "-o", schemaBin, "-overlay", ovFile, "."); err != nil {
			return nil, fmt.Errorf("building the schema test binary (the rewritten files are in %s): %v\n%s", sdir, err, tail([]byte(msg), 30))
		}
		if st, k := runShards(ctx, dir, schemaBin, 0, shards, timeouts); st != statusLived {
			return nil, fmt.Errorf("the schema binary fails with no mutant active: %s %s", st, k)
		}
		fmt.Fprintf(out, "mutrun: schema holds %d of %d covered mutants, clean schema run passed at %s\n", len(hosted), len(covered), time.Since(start).Round(time.Second))
	}

	jobs := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := 0
	for w := 0; w < cfg.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				m := mutants[i]
				t0 := time.Now()
				if hosted[m.ID] {
					m.Status, m.Killer = runShards(ctx, dir, schemaBin, m.ID, shards, timeouts)
				} else {
					m.Status, m.Killer = testMutant(ctx, dir, tmp, m, sources[m.File], shards, timeouts)
				}
				m.Seconds = time.Since(t0).Seconds()
				mu.Lock()
				mutants[i] = m
				done++
				fmt.Fprintf(out, "%4d/%d %-11s %s %s\n", done, len(mutants), m.Status, m, m.Killer)
				mu.Unlock()
			}
		}()
	}
	for i := range mutants {
		if mutants[i].Status == "" {
			jobs <- i
		} else {
			mu.Lock()
			done++
			mu.Unlock()
		}
	}
	close(jobs)
	wg.Wait()

	if cfg.confirm && schemaBin != "" {
		confirmKills(ctx, out, dir, schemaBin, mutants, hosted, shards, timeouts, cfg.workers)
	}
	report(out, mutants, time.Since(start))
	if cfg.jsonOut != "" {
		b, err := json.MarshalIndent(mutants, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return nil, err
		}
	}
	return mutants, nil
}

// confirmKills runs each hosted KILLED mutant's failing test again, alone.
// A test that fails again confirms the kill. One that passes may be flaky
// under load: the whole suite runs again, and the mutant counts as killed
// only if some test fails there too; otherwise it is LIVED, its killer
// noted as unconfirmed.
func confirmKills(ctx context.Context, out io.Writer, dir, bin string, mutants []Mutant, hosted map[int]bool, shards [][]string, timeouts []time.Duration, workers int) {
	longest := slices.Max(timeouts)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	flipped := 0
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				m := mutants[i]
				test, _, _ := strings.Cut(m.Killer, "/")
				if st, _ := runShard(ctx, dir, bin, m.ID, []string{test}, longest); st == statusKilled {
					continue
				}
				st, k := runShards(ctx, dir, bin, m.ID, shards, timeouts)
				mu.Lock()
				if st == statusKilled {
					mutants[i].Killer = k
				} else {
					mutants[i].Status, mutants[i].Killer = statusLived, "unconfirmed kill by "+m.Killer
					flipped++
					fmt.Fprintf(out, "mutrun: %s: the kill by %s did not repeat; counted LIVED\n", m, m.Killer)
				}
				mu.Unlock()
			}
		})
	}
	n := 0
	for i, m := range mutants {
		named := strings.HasPrefix(m.Killer, "Test") || strings.HasPrefix(m.Killer, "Fuzz") || strings.HasPrefix(m.Killer, "Example")
		if m.Status == statusKilled && hosted[m.ID] && named {
			jobs <- i
			n++
		}
	}
	close(jobs)
	wg.Wait()
	fmt.Fprintf(out, "mutrun: confirmed %d of %d kills by a named test\n", n-flipped, n)
}

// testMutant builds the test binary with the mutant in place and runs every
// shard; it returns the status and the first failing test.
func testMutant(ctx context.Context, dir, tmp string, m Mutant, src []byte, shards [][]string, timeouts []time.Duration) (string, string) {
	mdir := filepath.Join(tmp, strconv.Itoa(m.ID))
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return statusNotViable, err.Error()
	}
	defer os.RemoveAll(mdir)
	mutated, err := m.apply(src)
	if err != nil {
		return statusNotViable, err.Error()
	}
	file := filepath.Join(mdir, m.File)
	if err := os.WriteFile(file, mutated, 0o644); err != nil {
		return statusNotViable, err.Error()
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(dir, m.File): file}})
	ovFile := filepath.Join(mdir, "overlay.json")
	if err := os.WriteFile(ovFile, overlay, 0o644); err != nil {
		return statusNotViable, err.Error()
	}
	bin := filepath.Join(mdir, "pkg.test")
	if msg, err := goRun(ctx, dir, "test", "-c", "-o", bin, "-overlay", ovFile, "."); err != nil {
		return statusNotViable, firstLine(msg)
	}
	return runShards(ctx, dir, bin, 0, shards, timeouts)
}

// runShards runs every shard of the test binary bin with mutant active
// (0: none) and returns the status and the first failing test.
func runShards(ctx context.Context, dir, bin string, active int, shards [][]string, timeouts []time.Duration) (string, string) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct{ status, killer string }
	results := make(chan result, len(shards))
	for i, s := range shards {
		go func() {
			st, k := runShard(sctx, dir, bin, active, s, timeouts[i])
			results <- result{st, k}
		}()
	}
	status, killer := statusLived, ""
	for range shards {
		r := <-results
		switch {
		case r.status == statusKilled && status != statusKilled:
			status, killer = statusKilled, r.killer
			cancel() // one failing test is enough
		case r.status == statusTimedOut && status == statusLived:
			status, killer = statusTimedOut, r.killer
		}
	}
	return status, killer
}

var failLine = regexp.MustCompile(`^--- FAIL: (\S+)`)

// runShard runs one shard's tests; a cancelled shard reports LIVED, which
// the caller ignores once another shard has killed the mutant.
func runShard(ctx context.Context, dir, bin string, active int, tests []string, timeout time.Duration) (string, string) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, bin, "-test.run", runPattern(tests), "-test.failfast", "-test.count=1",
		"-test.v", "-test.timeout", (timeout + 30*time.Second).String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", activeEnv, active))
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if err == nil {
		return statusLived, ""
	}
	if ctx.Err() != nil {
		return statusLived, ""
	}
	if tctx.Err() != nil || strings.Contains(buf.String(), "panic: test timed out") {
		return statusTimedOut, "after " + timeout.String()
	}
	killer := "exit: " + err.Error()
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if mm := failLine.FindStringSubmatch(sc.Text()); mm != nil {
			killer = mm[1]
			break
		}
	}
	return statusKilled, killer
}

func runPattern(tests []string) string {
	q := make([]string, len(tests))
	for i, t := range tests {
		q[i] = regexp.QuoteMeta(t)
	}
	return "^(" + strings.Join(q, "|") + ")$"
}

// listTests returns the top-level tests, fuzz targets (their seed corpus
// runs as a test) and examples of a test binary.
func listTests(ctx context.Context, dir, bin string) ([]string, error) {
	cmd := exec.CommandContext(ctx, bin, "-test.list", ".")
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing tests: %v", err)
	}
	var names []string
	for _, n := range strings.Fields(string(b)) {
		if strings.HasPrefix(n, "Test") || strings.HasPrefix(n, "Fuzz") || strings.HasPrefix(n, "Example") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the package has no tests")
	}
	return names, nil
}

var passLine = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

// cleanRun runs every test once without mutants, with coverage, and returns
// each top-level test's duration.
func cleanRun(ctx context.Context, dir, bin string, names []string, profile string) (map[string]time.Duration, error) {
	cmd := exec.CommandContext(ctx, bin, "-test.run", runPattern(names), "-test.count=1", "-test.v",
		"-test.coverprofile", profile, "-test.timeout", "20m")
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("the tests fail without any mutant (%v); fix that first:\n%s", err, failures(b))
	}
	d := map[string]time.Duration{}
	for _, line := range strings.Split(string(b), "\n") {
		if mm := passLine.FindStringSubmatch(line); mm != nil {
			s, _ := strconv.ParseFloat(mm[3], 64)
			d[mm[2]] = time.Duration(s * float64(time.Second))
		}
	}
	return d, nil
}

// makeShards splits the tests over n shards, longest first onto the
// shortest shard; within a shard the tests keep the package's order.
func makeShards(names []string, d map[string]time.Duration, n int) [][]string {
	order := map[string]int{}
	for i, name := range names {
		order[name] = i
	}
	byLen := append([]string(nil), names...)
	sort.SliceStable(byLen, func(i, j int) bool { return d[byLen[i]] > d[byLen[j]] })
	shards := make([][]string, n)
	sums := make([]time.Duration, n)
	for _, name := range byLen {
		k := 0
		for i := range sums {
			if sums[i] < sums[k] {
				k = i
			}
		}
		shards[k] = append(shards[k], name)
		sums[k] += d[name] + time.Millisecond
	}
	var out [][]string
	for _, s := range shards {
		if len(s) == 0 {
			continue
		}
		sort.Slice(s, func(i, j int) bool { return order[s[i]] < order[s[j]] })
		out = append(out, s)
	}
	return out
}

func report(out io.Writer, mutants []Mutant, took time.Duration) {
	type counts map[string]int
	perFile := map[string]counts{}
	total := counts{}
	var files []string
	for _, m := range mutants {
		if perFile[m.File] == nil {
			perFile[m.File] = counts{}
			files = append(files, m.File)
		}
		perFile[m.File][m.Status]++
		total[m.Status]++
	}
	line := func(name string, c counts) {
		k, l := c[statusKilled], c[statusLived]
		eff := 0.0
		if k+l > 0 {
			eff = 100 * float64(k) / float64(k+l)
		}
		fmt.Fprintf(out, "%-16s killed %4d  lived %4d  timed out %3d  not viable %3d  not covered %3d  efficacy %5.1f%%\n",
			name, k, l, c[statusTimedOut], c[statusNotViable], c[statusNotCovered], eff)
	}
	fmt.Fprintln(out, "\nmutrun: survivors")
	for _, m := range mutants {
		if m.Status == statusLived {
			fmt.Fprintf(out, "  LIVED %s\n", m)
		}
	}
	fmt.Fprintln(out, "\nmutrun: results")
	for _, f := range files {
		line(f, perFile[f])
	}
	line("total", total)
	fmt.Fprintf(out, "took %s\n", took.Round(time.Second))
}

func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func goRun(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	return string(b), err
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return strings.TrimSpace(s)
}

// failures returns the lines of a verbose test log that tell what failed:
// each failing test and what it logged, or the log's tail if none.
func failures(b []byte) string {
	var out []string
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.Contains(l, "--- FAIL") || strings.HasPrefix(l, "panic:") {
			out = append(out, lines[max(0, i-8):min(len(lines), i+8)]...)
			out = append(out, "...")
		}
	}
	if len(out) == 0 {
		return tail(b, 40)
	}
	return strings.Join(out, "\n")
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
