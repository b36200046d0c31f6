package jsinterop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// jsDir is the JS package, relative to this package's directory (where go
// test runs the tests).
const jsDir = "js"

// jsFiles are copied next to the installed node_modules for each driver.
var jsFiles = []string{"package.json", "driver.mjs", "guard.mjs"}

// requireEnv, set to "require", turns every skip for want of node, npm or
// the registry into a failure (for machines where the check must run).
const requireEnv = "PHRASEMEET_JSINTEROP"

// Timeouts: generous, since a loaded two-core machine runs these; none of
// them is an assertion about speed.
const (
	installTimeout = 5 * time.Minute
	callTimeout    = 90 * time.Second // one driver request (a DHT traversal is a few seconds)
	exitTimeout    = 15 * time.Second
)

var (
	tempCache     string // used when there is no user cache directory; removed by TestMain
	tempCacheOnce sync.Once

	install struct {
		once    sync.Once
		modules string // node_modules directory
		skip    string // why the JS side is unavailable
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tempCache != "" {
		os.RemoveAll(tempCache)
	}
	if phrasemeetDir != "" {
		os.RemoveAll(phrasemeetDir)
	}
	os.Exit(code)
}

// skipOrFail skips t, or fails it when requireEnv asks for the JS side.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(requireEnv) == "require" {
		t.Fatalf("JS interop required (%s=require) but unavailable: %s", requireEnv, reason)
	}
	t.Skip("JS interop unavailable: " + reason)
}

// jsModules returns the node_modules directory of the installed JS side,
// installing it on first use; it skips t when that is not possible.
func jsModules(t testing.TB) string {
	t.Helper()
	install.once.Do(func() { install.modules, install.skip = installJS() })
	if install.skip != "" {
		skipOrFail(t, install.skip)
	}
	return install.modules
}

// installJS runs npm ci for js/package-lock.json into
// <cache>/phrasemeet-jsinterop/<hash of package.json and the lock file>,
// unless an earlier run already did. It returns the node_modules path, or
// why it could not.
func installJS() (modules, skip string) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Sprintf("%s not found: %v", tool, err)
		}
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "", fmt.Sprintf("node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".", 2)[0])
	if major < 18 {
		return "", fmt.Sprintf("node %s is too old (pkarr's relay client needs fetch, node 18 or later)", strings.TrimSpace(string(out)))
	}
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(jsDir, f))
		if err != nil {
			return "", fmt.Sprintf("reading %s: %v", f, err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]

	base, err := os.UserCacheDir()
	if err == nil {
		base = filepath.Join(base, "phrasemeet-jsinterop")
		err = os.MkdirAll(base, 0o755)
	}
	if err != nil {
		tempCacheOnce.Do(func() { tempCache, err = os.MkdirTemp("", "phrasemeet-jsinterop") })
		if err != nil {
			return "", fmt.Sprintf("no cache directory: %v", err)
		}
		base = tempCache
	}
	final := filepath.Join(base, key)
	modules = filepath.Join(final, "node_modules")
	if installed(final) {
		return modules, ""
	}

	// Install into a fresh directory and rename it into place, so that a
	// run interrupted halfway, or a concurrent one, never leaves a
	// half-installed tree under the final name.
	tmp, err := os.MkdirTemp(base, key+".tmp-")
	if err != nil {
		return "", fmt.Sprintf("install directory: %v", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(jsDir, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, f), b, 0o644)
		}
		if err != nil {
			return "", fmt.Sprintf("copying %s: %v", f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	// --ignore-scripts: nothing in the tree needs an install script
	// (sodium-native ships prebuilt binaries), and none should run.
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
		"--loglevel=error", "--update-notifier=false")
	cmd.Dir = tmp
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Sprintf("npm ci failed after %v (is the npm registry reachable?): %v\n%s",
			time.Since(start).Round(time.Second), err, tail(log.String(), 800))
	}
	if err := os.WriteFile(filepath.Join(tmp, "installed"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Sprintf("marking the install: %v", err)
	}
	if err := os.Rename(tmp, final); err != nil && !installed(final) {
		return "", fmt.Sprintf("moving the install into place: %v", err)
	}
	return modules, ""
}

func installed(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "installed"))
	return err == nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// driver is a running js/driver.mjs.
type driver struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin *os.File

	mu     sync.Mutex // serialises calls
	nextID int
	lines  chan []byte // stdout lines
	exited chan struct{}
	err    error // exit status, once exited is closed

	stderrMu sync.Mutex
	stderr   bytes.Buffer
}

type response struct {
	ID     int             `json:"id"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

// startDriver starts the JS driver in a temporary directory that holds
// copies of the scripts and a link to the installed node_modules. It is
// stopped when the test ends, and the test fails if the loopback guard
// refused anything.
func startDriver(t testing.TB) *driver {
	t.Helper()
	modules := jsModules(t)
	dir := t.TempDir()
	for _, f := range jsFiles {
		b, err := os.ReadFile(filepath.Join(jsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{t: t, stdin: inW, lines: make(chan []byte, 16), exited: make(chan struct{})}
	cmd := exec.Command("node", "driver.mjs")
	cmd.Dir = dir
	// HOME points into the test's directory: pkarr's DHT wrapper reads and
	// writes a routing table under ~/.config/pkarr (the driver turns that
	// off; this makes sure nothing real is read or left behind).
	cmd.Env = append(os.Environ(), "HOME="+dir, "NODE_OPTIONS=", "DEBUG=")
	cmd.Stdin, cmd.Stdout = inR, outW
	cmd.Stderr = &lockedWriter{mu: &d.stderrMu, w: &d.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	inR.Close()
	outW.Close()
	d.cmd = cmd
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			d.lines <- bytes.Clone(sc.Bytes())
		}
		close(d.lines)
	}()
	go func() {
		d.err = cmd.Wait()
		outR.Close()
		close(d.exited)
	}()
	t.Cleanup(d.stop)

	// The driver's first line says it loaded every module.
	select {
	case line, ok := <-d.lines:
		if !ok || !bytes.Contains(line, []byte(`"ready"`)) {
			t.Fatalf("JS driver did not start: %q\nstderr:\n%s", line, d.stderrText())
		}
	case <-time.After(callTimeout):
		t.Fatalf("JS driver did not start within %v\nstderr:\n%s", callTimeout, d.stderrText())
	}
	return d
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *driver) stderrText() string {
	d.stderrMu.Lock()
	defer d.stderrMu.Unlock()
	return tail(d.stderr.String(), 8000)
}

// errJS is a request the JS side answered with an error.
var errJS = errors.New("JS side failed")

// call sends one request and decodes its result into result (unless nil).
// An error the JS side reports wraps errJS; a driver that does not answer
// fails t (the calling test or subtest).
func (d *driver) call(t testing.TB, op string, args any, result any) error {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	id := d.nextID
	req, err := json.Marshal(map[string]any{"id": id, "op": op, "args": args})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.stdin.Write(append(req, '\n')); err != nil {
		t.Fatalf("JS driver: writing %s: %v\nstderr:\n%s", op, err, d.stderrText())
	}
	timer := time.NewTimer(callTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				t.Fatalf("JS driver exited during %s\nstderr:\n%s", op, d.stderrText())
			}
			var resp response
			if err := json.Unmarshal(line, &resp); err != nil {
				// Something in the JS libraries printed to stdout.
				t.Logf("JS driver: not an answer: %q", line)
				continue
			}
			if resp.ID != id {
				t.Fatalf("JS driver: answer %d to request %d (%s)", resp.ID, id, op)
			}
			if !resp.OK {
				return fmt.Errorf("%w: %s: %s", errJS, op, resp.Error)
			}
			if result != nil {
				if err := json.Unmarshal(resp.Result, result); err != nil {
					t.Fatalf("JS driver: decoding the answer to %s: %v: %s", op, err, resp.Result)
				}
			}
			return nil
		case <-timer.C:
			t.Fatalf("JS driver: no answer to %s within %v\nstderr:\n%s", op, callTimeout, d.stderrText())
		}
	}
}

// must is call for requests that have to succeed.
func (d *driver) must(t testing.TB, op string, args any, result any) {
	t.Helper()
	if err := d.call(t, op, args, result); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, d.stderrText())
	}
}

// stop closes the driver's input, which makes it close every node and
// server and exit, kills it if it does not, and fails the test if the
// loopback guard refused anything.
func (d *driver) stop() {
	d.stdin.Close()
	select {
	case <-d.exited:
	case <-time.After(exitTimeout):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("JS driver did not exit within %v of its input closing; killed", exitTimeout)
	}
	var ee *exec.ExitError
	switch {
	case d.err == nil:
	case errors.As(d.err, &ee) && ee.ExitCode() == 3:
		d.t.Errorf("JS side tried to leave loopback (refused):\n%s", d.stderrText())
	default:
		d.t.Errorf("JS driver: %v\nstderr:\n%s", d.err, d.stderrText())
	}
	if text := d.stderrText(); d.t.Failed() && text != "" {
		d.t.Logf("JS driver stderr:\n%s", text)
	}
}
