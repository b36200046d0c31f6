package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// syncBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// joinRun is a join command running in-process; cancelling it is what a
// SIGINT or SIGTERM does to the real process (main's NotifyContext).
type joinRun struct {
	t              *testing.T
	cancel         context.CancelFunc
	stdout, stderr *syncBuffer
	code           chan int
}

func startJoin(t *testing.T, vars map[string]string, args ...string) *joinRun {
	t.Helper()
	e, _, _ := testEnv(t, vars, nil)
	j := &joinRun{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, code: make(chan int, 1)}
	e.stdout, e.stderr = j.stdout, j.stderr
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	go func() { j.code <- run(ctx, e, append([]string{"join"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-j.code:
		case <-time.After(stopTimeout):
			t.Errorf("join did not return after its context ended")
		}
	})
	return j
}

// wait waits for stdout to match re and returns the submatches. The bound
// is generous: under -race on a loaded machine the KDF alone takes seconds.
func (j *joinRun) wait(re *regexp.Regexp) []string {
	j.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		if m := re.FindStringSubmatch(j.stdout.String()); m != nil {
			return m
		}
		select {
		case code := <-j.code:
			j.code <- code
			j.t.Fatalf("join exited %d before printing %s\nstdout:\n%s\nstderr:\n%s", code, re, j.stdout, j.stderr)
		default:
		}
		if time.Now().After(deadline) {
			j.t.Fatalf("join did not print %s\nstdout:\n%s\nstderr:\n%s", re, j.stdout, j.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop cancels the command, as a signal would, and returns its exit code.
func (j *joinRun) stop() int {
	j.t.Helper()
	j.cancel()
	select {
	case code := <-j.code:
		j.code <- code
		return code
	case <-time.After(stopTimeout):
		j.t.Fatalf("join did not leave after its context ended\n%s", j.stderr)
	}
	return -1
}

var announcedLine = regexp.MustCompile(`(?m)^announced ([0-9a-f]{64})(?: \[[^\]]*\])? \(profile (\S+)\); Ctrl-C leaves$`)

var slotStatus = regexp.MustCompile(`(?m)^announced in slot (\d+)$`)

// TestJoinInProcess runs two joins of each profile in-process against a
// real in-process relay: they find each other with their addresses, and
// when one is interrupted it leaves (exit 0, "left") and the other prints
// lost. b is interrupted as soon as it has found a, which may be before its
// own claim's read-back: its tombstone must still be written, or a would
// print lost only when b's entry ages out, long after the test's bound.
func TestJoinInProcess(t *testing.T) {
	relay := testRelay(t)
	vars := map[string]string{passphraseEnv: secretPhrase}
	for _, tc := range []struct {
		profile string
		a, b    []string
	}{
		{"default", []string{"--addr", "/ip4/192.0.2.1/tcp/1", "--addr", "a,b"}, []string{"--app", slotdiscovery.DefaultApp}},
		// can-sync scans every 15 s; --scan-interval makes the test fast.
		{"can-sync", []string{"--scan-interval", "500ms"}, []string{"--scan-interval", "500ms"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			common := []string{"--profile", tc.profile, "--relay", relay}
			a := startJoin(t, vars, append(common, tc.a...)...)
			aID := a.wait(announcedLine)[1]
			if tc.profile == "can-sync" {
				// One after the other: can-sync's claim race would put
				// both in slot 0 (failure 2 of the notes).
				waitFor(t, "a's claim", func() bool { return canSyncSlotOf(t, newTestClient(t, relay), secretPhrase, aID) >= 0 })
			}
			b := startJoin(t, vars, append(common, tc.b...)...)
			m := b.wait(announcedLine)
			bID := m[1]
			if m[2] != tc.profile {
				t.Errorf("announced line names profile %q", m[2])
			}
			source := map[string]string{"default": "slots", "can-sync": "can-sync"}[tc.profile]
			aAddrs := ""
			if tc.profile == "default" {
				aAddrs = ` \[/ip4/192.0.2.1/tcp/1 a,b\]`
			}
			b.wait(regexp.MustCompile(`(?m)^found ` + aID + aAddrs + ` via ` + source + `$`))
			a.wait(regexp.MustCompile(`(?m)^found ` + bID + ` via ` + source + `$`))

			// No pause: b may still be in its claim's read-back.
			if code := b.stop(); code != 0 {
				t.Fatalf("b exit %d after interrupt\n%s", code, b.stderr)
			}
			b.wait(regexp.MustCompile(`(?m)^left ` + bID + `$`))
			a.wait(regexp.MustCompile(`(?m)^lost ` + bID + ` via ` + source + `$`))

			// The default profile says where it settled, on stderr, and
			// again only if it moved; can-sync does not tell.
			aSlots := slotStatus.FindAllStringSubmatch(a.stderr.String(), -1)
			switch tc.profile {
			case "default":
				if len(aSlots) == 0 {
					t.Fatalf("a printed no slot:\n%s", a.stderr)
				}
				i, _ := strconv.Atoi(aSlots[len(aSlots)-1][1])
				g, err := slotdiscovery.DeriveGroup([]byte(secretPhrase))
				if err != nil {
					t.Fatal(err)
				}
				if !slotHolds(t, newTestClient(t, relay), g, i, aID) {
					t.Errorf("a said slot %d, which does not hold its entry", i)
				}
			default:
				if len(aSlots) != 0 {
					t.Errorf("can-sync printed a slot: %s", a.stderr)
				}
			}

			if code := a.stop(); code != 0 {
				t.Fatalf("a exit %d after interrupt\n%s", code, a.stderr)
			}
			for _, j := range []*joinRun{a, b} {
				assertNoSecret(t, j.stdout.String()+j.stderr.String())
				if strings.Contains(j.stderr.String(), "warning") {
					t.Errorf("stderr: %s", j.stderr)
				}
			}
		})
	}
}

func TestJoinUsageErrors(t *testing.T) {
	vars := map[string]string{passphraseEnv: secretPhrase}
	notAKey := notACurvePoint(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--profile", "can-sync", "--addr", "192.0.2.1:1"}, "carries only the ID"},
		{[]string{"--profile", "can-sync", "--id", "abcd"}, "wants 64 hex digits"},
		{[]string{"--profile", "can-sync", "--id", strings.Repeat("g", 64)}, "wants 64 hex digits"},
		{[]string{"--profile", "can-sync", "--app", "x"}, "--app is for the default profile"},
		{[]string{"--scan-interval", "-1s"}, "must be positive"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--relay", "none"}, "nothing to talk to"},
		{[]string{"--relay", "ftp://x"}, "relay"},
		{[]string{"--dht-listen", ":0"}, "--dht-listen needs --dht"},
		{[]string{"--addr", ""}, "--addr must not be empty"},
		{[]string{"--addr", "/ip4/192.0.2.1/tcp/1", "--addr", " \t"}, "--addr must not be empty"},
		// Caught by the library once the keys are derived, still exit 2.
		{[]string{"--addr", strings.Repeat("x", 900)}, "cannot announce this --id and --addr: invalid record: too large"},
	} {
		code, stdout, stderr := runCLI(t, vars, append([]string{"join"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("join %q: exit %d %q, want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
		assertNoSecret(t, stdout+stderr)
	}
	code, _, stderr := runCLI(t, vars, "join", "--profile", "can-sync", "--id", notAKey)
	if code != 2 || !strings.Contains(stderr, "not one") {
		t.Errorf("join --id NOT-A-KEY: exit %d %q", code, stderr)
	}
}

// TestJoinIDAndJSON: --id is announced as given (can-sync: lowercased),
// and --json prints only JSON, the first object the announcement.
func TestJoinIDAndJSON(t *testing.T) {
	relay := testRelay(t)
	vars := map[string]string{passphraseEnv: secretPhrase}
	id := mustRandomID(t)
	j := startJoin(t, vars, "--profile", "can-sync", "--relay", relay, "--json", "--id", strings.ToUpper(id))
	j.wait(regexp.MustCompile(`^\{"event":"announced","id":"` + id + `","addrs":\[\],"profile":"can-sync","time":"[^"]+"\}\n`))
	waitFor(t, "the claim", func() bool { return canSyncSlotOf(t, newTestClient(t, relay), secretPhrase, id) >= 0 })
	if code := j.stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, j.stderr)
	}
	j.wait(regexp.MustCompile(`(?m)^\{"event":"left","id":"` + id + `",.*\}$`))
	for _, l := range strings.Split(strings.TrimSpace(j.stdout.String()), "\n") {
		if !strings.HasPrefix(l, "{") {
			t.Errorf("--json printed a line that is not JSON: %q", l)
		}
	}
	if s := j.stderr.String(); s != "" {
		t.Errorf("--json wrote to stderr: %q", s)
	}
	// The leave cleared the slot.
	if i := canSyncSlotOf(t, newTestClient(t, relay), secretPhrase, id); i >= 0 {
		t.Errorf("slot %d still holds the ID after the leave", i)
	}
}

// slotHolds reports whether slot i of g holds a live entry for id.
func slotHolds(t *testing.T, client *pkarrclient.Client, g *slotdiscovery.Group, i int, id string) bool {
	t.Helper()
	infos, err := slotdiscovery.ReadTable(context.Background(), client, g, slotdiscovery.TableMinSlots(i+1))
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range infos {
		for _, m := range si.Members {
			if si.Index == i && m.Record.ID == id && !m.Left {
				return true
			}
		}
	}
	return false
}

// notACurvePoint returns 64 hex digits that are not an Ed25519 public key.
func notACurvePoint(t *testing.T) string {
	for k := range 256 {
		b := make([]byte, 32)
		b[0] = byte(k)
		if _, err := pkarrclient.PublicKeyFromBytes(b); err != nil {
			return hex.EncodeToString(b)
		}
	}
	t.Fatal("no small y is off the curve?")
	return ""
}
