package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const sample = `package p

func f(a, b int) int {
	if a < b && a != 0 {
		a++
	}
	for i := 0; i >= -b; i-- {
		b = b*2 + a%3 - a/4
	}
	s := "x" + "y"
	_ = s
	return -a
}
`

func TestFindMutants(t *testing.T) {
	ms, err := findMutants("p.go", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.String())
	}
	want := []string{
		"p.go:4:7 CONDITIONALS_BOUNDARY (< -> <=)",
		"p.go:4:7 CONDITIONALS_NEGATION (< -> >=)",
		"p.go:4:16 CONDITIONALS_NEGATION (!= -> ==)",
		"p.go:5:4 INCREMENT_DECREMENT (++ -> --)",
		"p.go:7:16 CONDITIONALS_BOUNDARY (>= -> >)",
		"p.go:7:16 CONDITIONALS_NEGATION (>= -> <)",
		"p.go:7:19 INVERT_NEGATIVES (drop \"-\")",
		"p.go:7:24 INCREMENT_DECREMENT (-- -> ++)",
		"p.go:8:8 ARITHMETIC_BASE (* -> /)",
		"p.go:8:11 ARITHMETIC_BASE (+ -> -)",
		"p.go:8:14 ARITHMETIC_BASE (% -> *)",
		"p.go:8:17 ARITHMETIC_BASE (- -> +)",
		"p.go:8:20 ARITHMETIC_BASE (/ -> *)",
		"p.go:10:11 ARITHMETIC_BASE (+ -> -)",
		"p.go:12:9 INVERT_NEGATIVES (drop \"-\")",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mutants:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestApply(t *testing.T) {
	ms, err := findMutants("p.go", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	lines := func(b []byte) []string { return strings.Split(string(b), "\n") }
	orig := lines([]byte(sample))
	for _, m := range ms {
		out, err := m.apply([]byte(sample))
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		got := lines(out)
		// Exactly the mutant's line changes, by the operator alone.
		for i := range orig {
			if i == m.Line-1 {
				want := orig[i][:m.Col-1] + m.New + orig[i][m.Col-1+len(m.Old):]
				if got[i] != want {
					t.Errorf("%s: line reads %q, want %q", m, got[i], want)
				}
			} else if got[i] != orig[i] {
				t.Errorf("%s: line %d changed too: %q", m, i+1, got[i])
			}
		}
	}
	// A mutant applied to a source that moved fails loudly rather than
	// breaking something else.
	if _, err := ms[0].apply([]byte(strings.Replace(sample, "a < b", "a==b", 1))); err == nil {
		t.Error("apply to a changed source succeeded")
	}
}

func TestCoverage(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "cover.out")
	data := "mode: set\n" +
		"example.com/m/p/p.go:3.22,5.3 2 1\n" +
		"example.com/m/p/p.go:7.2,9.3 2 0\n" +
		"example.com/m/p/sub/q.go:1.1,9.1 1 1\n" +
		"example.com/m/other/p.go:1.1,20.1 1 1\n"
	if err := os.WriteFile(profile, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := readCoverage(profile, "example.com/m/p")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line, col int
		want      bool
	}{
		{3, 21, false}, {3, 22, true}, {4, 7, true}, {5, 3, true}, {5, 4, false},
		{8, 8, false},  // in a block no test ran
		{15, 1, false}, // only another package's p.go covers it
	} {
		if got := c.covers("p.go", tc.line, tc.col); got != tc.want {
			t.Errorf("covers(p.go:%d:%d) = %v, want %v", tc.line, tc.col, got, tc.want)
		}
	}
	if c.covers("q.go", 2, 1) {
		t.Error("a sub-package's file counted as the package's")
	}
	if err := os.WriteFile(profile, []byte("mode: set\nnot a profile line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCoverage(profile, "example.com/m/p"); err == nil {
		t.Error("a malformed profile was accepted")
	}
}

func TestShards(t *testing.T) {
	names := []string{"TestA", "TestB", "TestC", "TestD", "TestE"}
	d := map[string]time.Duration{"TestA": 1 * time.Second, "TestB": 5 * time.Second, "TestC": 4 * time.Second, "TestD": 1 * time.Second}
	shards := makeShards(names, d, 2)
	var all []string
	for _, s := range shards {
		all = append(all, s...)
		// Within a shard, the package's order.
		if !slices.IsSortedFunc(s, func(a, b string) int { return slices.Index(names, a) - slices.Index(names, b) }) {
			t.Errorf("shard %v out of the package's order", s)
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, names) {
		t.Fatalf("shards %v do not hold every test once", shards)
	}
	// Longest first onto the shortest shard: {B, E?} and {C, A, D} or the like,
	// 5 s against 6 s rather than 9 s against 2 s.
	for _, s := range shards {
		var sum time.Duration
		for _, n := range s {
			sum += d[n]
		}
		if sum > 6*time.Second {
			t.Errorf("unbalanced shards %v", shards)
		}
	}
	if got := makeShards(names, d, 10); len(got) != len(names) {
		t.Errorf("10 shards of 5 tests: %d shards, want 5 (no empty ones)", len(got))
	}
}

func TestRunPattern(t *testing.T) {
	re := regexp.MustCompile(runPattern([]string{"TestA", "FuzzB"}))
	for name, want := range map[string]bool{"TestA": true, "FuzzB": true, "TestAB": false, "XTestA": false} {
		if re.MatchString(name) != want {
			t.Errorf("%s matched %v, want %v", name, !want, want)
		}
	}
}

// TestRun measures a small module end to end, in both modes: mutants its
// tests kill, one they cannot tell apart (a > b against a >= b in a max),
// one on a line no test reaches; an increment on an unsigned type, a unary
// minus, and arithmetic on a type from a package the file does not import.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds test binaries")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"q/q.go": "package q\n\nimport \"time\"\n\nfunc D() time.Duration { return 3 * time.Second }\n",
		"p/p.go": `package p

import "example.com/m/q"

func Max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func Unused(x int) int {
	return x + 1
}

func Twice() int64 {
	return int64(q.D() * 2)
}

func Count(n uint) uint {
	var c uint
	for i := uint(0); i < n; i++ {
		c++
	}
	return c
}

func Neg(x int) int { return -x }
`,
		"p/p_test.go": `package p

import "testing"

func TestMax(t *testing.T) {
	if Max(1, 2) != 2 || Max(3, 1) != 3 {
		t.Fatal("max")
	}
}

func TestOthers(t *testing.T) {
	if Twice() != 6e9 || Count(3) != 3 || Neg(2) != -2 {
		t.Fatal(Twice(), Count(3), Neg(2))
	}
}
`,
	}
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		"p.go:6:7 CONDITIONALS_BOUNDARY (> -> >=)":   statusLived,
		"p.go:6:7 CONDITIONALS_NEGATION (> -> <=)":   statusKilled,
		"p.go:13:11 ARITHMETIC_BASE (+ -> -)":        statusNotCovered,
		"p.go:17:21 ARITHMETIC_BASE (* -> /)":        statusKilled,
		"p.go:22:22 CONDITIONALS_BOUNDARY (< -> <=)": statusKilled,
		"p.go:22:22 CONDITIONALS_NEGATION (< -> >=)": statusKilled,
		"p.go:22:28 INCREMENT_DECREMENT (++ -> --)":  statusKilled,
		"p.go:23:4 INCREMENT_DECREMENT (++ -> --)":   statusKilled,
		"p.go:28:30 INVERT_NEGATIVES (drop \"-\")":   statusKilled,
	}
	for _, rebuild := range []bool{false, true} {
		var out strings.Builder
		ms, err := run(t.Context(), config{pkg: filepath.Join(dir, "p"), workers: 2, shards: 2, factor: 4, minTimeout: time.Minute, rebuild: rebuild, confirm: !rebuild}, &out)
		if err != nil {
			t.Fatalf("rebuild %v: %v\n%s", rebuild, err, out.String())
		}
		got := map[string]string{}
		for _, m := range ms {
			got[m.String()] = m.Status
		}
		if len(got) != len(want) {
			t.Errorf("rebuild %v: mutants %v, want %v", rebuild, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("rebuild %v: %s: %q, want %q", rebuild, k, got[k], v)
			}
		}
		if !strings.Contains(out.String(), "efficacy  87.5%") {
			t.Errorf("rebuild %v: report does not give 87.5%% efficacy:\n%s", rebuild, out.String())
		}
	}
}

// TestConfirmDiscountsAFlakyKill: a test that fails once for each mutant,
// then passes, "kills" every mutant in the main pass; -confirm keeps the
// kill that another test repeats and counts the other mutant LIVED.
func TestConfirmDiscountsAFlakyKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds test binaries")
	}
	dir := t.TempDir()
	t.Setenv("MUTRUN_FLAKY_DIR", t.TempDir())
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"p/p.go": "package p\n\nfunc Twice(x int) int { return x * 2 }\n\nfunc Less(x int) int { return x - 1 }\n",
		"p/p_test.go": `package p

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTwice(t *testing.T) {
	if Twice(2) != 4 {
		t.Fatal("twice")
	}
	_ = Less(1) // covered, never checked
}

func TestFlaky(t *testing.T) {
	id := os.Getenv("MUTRUN_ACTIVE")
	if id == "" || id == "0" {
		return
	}
	marker := filepath.Join(os.Getenv("MUTRUN_FLAKY_DIR"), id)
	if _, err := os.Stat(marker); err != nil {
		os.WriteFile(marker, nil, 0o644)
		t.Fatal("first run with mutant", id)
	}
}
`,
	}
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	ms, err := run(t.Context(), config{pkg: filepath.Join(dir, "p"), workers: 1, shards: 1, factor: 4, minTimeout: time.Minute, confirm: true}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := map[string]string{
		"p.go:3:34 ARITHMETIC_BASE (* -> /)": statusKilled,
		"p.go:5:33 ARITHMETIC_BASE (- -> +)": statusLived,
	}
	for _, m := range ms {
		if want[m.String()] != m.Status {
			t.Errorf("%s: %s (%s), want %s\n%s", m, m.Status, m.Killer, want[m.String()], out.String())
		}
	}
	if !strings.Contains(out.String(), "confirmed 1 of 2 kills") {
		t.Errorf("report:\n%s", out.String())
	}
}
