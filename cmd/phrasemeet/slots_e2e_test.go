package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// These tests run slots and join as real processes against a real
// `phrasemeet relay` process, stopped by real signals, with the
// passphrase in the environment (or a file) as a user would give it.

// passEnv is the environment that carries the test passphrase; noPass
// makes sure none is inherited (empty counts as unset).
var (
	passEnv = []string{passphraseEnv + "=" + secretPhrase}
	noPass  = []string{passphraseEnv + "="}
)

// TestProcessesSlotsKeysOnlyOffline: --keys-only prints the keys with the
// relay pointing at a dead port, at once: it asks no one.
func TestProcessesSlotsKeysOnlyOffline(t *testing.T) {
	t.Parallel()
	file := passFile(t, horsePassphrase+"\n", 0o600)
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{[]string{passphraseEnv + "=" + horsePassphrase}, nil},
		{noPass, []string{"--passphrase-file", file}},
	} {
		start := time.Now()
		code, stdout, stderr := cli(t, tc.env, append([]string{"slots", "--profile", "can-sync", "--keys-only", "--relay", deadRelay}, tc.args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if keys := keysOf(t, stdout); keys[0] != horseSlot0 {
			t.Errorf("slot 0 %s, want %s", keys[0], horseSlot0)
		}
		// A process start is milliseconds; a network attempt with retries
		// would take far longer than this bound.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
		if strings.Contains(stdout+stderr, horsePassphrase) {
			t.Error("the passphrase was printed")
		}
	}
	// The default profile runs the KDF, still offline.
	code, stdout, stderr := cli(t, passEnv, "slots", "--keys-only", "--relay", deadRelay)
	if code != 0 || len(keysOf(t, stdout)) != defaultKeysShown || !strings.Contains(stderr, "deriving keys") {
		t.Fatalf("default profile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	assertNoSecret(t, stdout+stderr)
}

// joinEvent is one line of join --json.
type joinEvent struct {
	Event   string   `json:"event"`
	ID      string   `json:"id"`
	Addrs   []string `json:"addrs"`
	Source  string   `json:"source"`
	Profile string   `json:"profile"`
	Slot    *int     `json:"slot"`
	Time    string   `json:"time"`
}

// eventLine matches a join --json line of the given event about id.
func eventLine(event, id string) *regexp.Regexp {
	return regexp.MustCompile(`^\{"event":"` + event + `","id":"` + id + `"`)
}

var announcedJSON = regexp.MustCompile(`^\{"event":"announced","id":"([0-9a-f]{64})".*"profile":"([^"]+)"`)

// TestProcessesJoin: two join --json processes with one passphrase meet
// through a relay process, for each profile; SIGTERM and SIGINT make a
// join leave and exit 0, and the other prints lost; slots shows who is
// there. The passphrase appears in no output.
func TestProcessesJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		profile string
		extra   []string
		source  string
	}{
		{"default", nil, "slots"},
		// can-sync scans every 15 s; --scan-interval makes the test fast.
		{"can-sync", []string{"--scan-interval", "1s"}, "can-sync"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			relay := startRelay(t, "memory")
			args := append([]string{"join", "--json", "--profile", tc.profile, "--relay", relay.url}, tc.extra...)
			aArgs := slices.Clone(args)
			if tc.profile == "default" {
				aArgs = append(aArgs, "--addr", "/ip4/192.0.2.1/udp/1/quic-v1")
			}
			a := startProc(t, passEnv, aArgs...)
			m := a.WaitLine(proctest.Stdout, announcedJSON, readyTimeout)
			aID := m[1]
			if m[2] != tc.profile {
				t.Errorf("announced profile %q", m[2])
			}
			if tc.profile == "can-sync" {
				// One after the other: can-sync's claim race would put
				// both in slot 0 (failure 2 of the notes).
				client := newTestClient(t, relay.url)
				waitFor(t, "a's claim", func() bool { return canSyncSlotOf(t, client, secretPhrase, aID) >= 0 })
			}
			b := startProc(t, passEnv, args...)
			bID := b.WaitLine(proctest.Stdout, announcedJSON, readyTimeout)[1]

			found := b.WaitLine(proctest.Stdout, regexp.MustCompile(eventLine("found", aID).String()+`.*`), readyTimeout)[0]
			a.WaitLine(proctest.Stdout, eventLine("found", bID), readyTimeout)
			var ev joinEvent
			if err := json.Unmarshal([]byte(found), &ev); err != nil {
				t.Fatalf("found line %q: %v", found, err)
			}
			wantAddrs := "[]"
			if tc.profile == "default" {
				wantAddrs = "[/ip4/192.0.2.1/udp/1/quic-v1]"
			}
			if ev.Source != tc.source || strings.Join(ev.Addrs, " ") != strings.Trim(wantAddrs, "[]") {
				t.Errorf("found event %+v; want source %s and addrs %s", ev, tc.source, wantAddrs)
			}

			// The default profile reports its slot as an event of its own.
			if tc.profile == "default" {
				line := a.WaitLine(proctest.Stdout, regexp.MustCompile(eventLine("claimed", aID).String()+`.*`), readyTimeout)[0]
				var ev joinEvent
				if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Slot == nil || *ev.Slot < 0 {
					t.Errorf("claimed line %q: %v", line, err)
				}
			}

			// No pause: b may still be confirming its claim, and must
			// leave all the same.
			if _, err := b.Stop(syscall.SIGTERM, stopTimeout); err != nil {
				t.Fatalf("b after SIGTERM: %v\n%s", err, b.Output())
			}
			b.WaitLine(proctest.Stdout, eventLine("left", bID), time.Second)
			a.WaitLine(proctest.Stdout, eventLine("lost", bID), readyTimeout)

			// The table: a live; b left (a tombstone) or, in can-sync, gone
			// from its cleared slot.
			code, stdout, stderr := cli(t, passEnv, "slots", "--profile", tc.profile, "--relay", relay.url)
			if code != 0 {
				t.Fatalf("slots: exit %d: %s", code, stderr)
			}
			if !regexp.MustCompile(`(?m)^      - live\s+\d+s  ` + aID).MatchString(stdout) {
				t.Errorf("slots does not show a live:\n%s", stdout)
			}
			switch tc.profile {
			case "default":
				if !regexp.MustCompile(`(?m)^      - left\s+\d+s  ` + bID + `$`).MatchString(stdout) {
					t.Errorf("slots does not show b's tombstone:\n%s", stdout)
				}
			default:
				if strings.Contains(stdout, bID) || strings.Count(stdout, " empty ") != slotdiscovery.CanSyncSlots-1 {
					t.Errorf("slots shows more than a:\n%s", stdout)
				}
			}
			assertNoSecret(t, stdout+stderr)
			// The same in JSON, which a program reads.
			code, stdout, stderr = cli(t, passEnv, "slots", "--json", "--profile", tc.profile, "--relay", relay.url)
			if code != 0 || stderr != "" {
				t.Fatalf("slots --json: exit %d, stderr %q", code, stderr)
			}
			states := map[string]string{} // member ID: state
			for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
				var row slotJSON
				if err := json.Unmarshal([]byte(l), &row); err != nil {
					t.Fatalf("slots --json line %q: %v", l, err)
				}
				for _, m := range row.Members {
					states[m.ID] = m.State
				}
			}
			wantB := map[string]string{"default": "left", "can-sync": ""}[tc.profile]
			if states[aID] != "live" || states[bID] != wantB {
				t.Errorf("slots --json: a is %q, b %q; want live and %q\n%s", states[aID], states[bID], wantB, stdout)
			}

			if _, err := a.Stop(os.Interrupt, stopTimeout); err != nil {
				t.Fatalf("a after SIGINT: %v\n%s", err, a.Output())
			}
			a.WaitLine(proctest.Stdout, eventLine("left", aID), time.Second)
			for _, p := range []*proctest.Proc{a, b} {
				out := p.Output()
				assertNoSecret(t, out)
				for _, l := range p.Lines(proctest.Stdout) {
					var ev joinEvent
					if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Time == "" {
						t.Errorf("not a join --json line: %q (%v)", l, err)
					}
					if ev.Event == "claimed" && tc.profile == "can-sync" {
						t.Errorf("can-sync reported a slot: %q", l)
					}
				}
				if stderr := p.Text(proctest.Stderr); stderr != "" {
					t.Errorf("join --json wrote to stderr: %q", stderr)
				}
			}
		})
	}
}

// TestProcessesJoinRefusals: what is refused is refused before anything
// runs, with exit 2, without quoting the passphrase.
func TestProcessesJoinRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{passphraseEnv + "=" + "Zq7-short"}, nil, "too weak"},
		{noPass, []string{"--passphrase", secretPhrase}, "there is no --passphrase flag"},
		{noPass, []string{"--passphrase=" + secretPhrase}, "there is no --passphrase flag"},
		{noPass, []string{"--relay", deadRelay, secretPhrase}, "takes no arguments"},
		{passEnv, []string{"--profile", "can-sync", "--addr", "192.0.2.1:1"}, "carries only the ID"},
		{noPass, nil, "no passphrase"}, // stdin is not a terminal here
	} {
		code, stdout, stderr := cli(t, tc.env, append([]string{"join", "--relay", deadRelay}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("join %q: exit %d %q, want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
		assertCleanError(t, stderr)
		assertNoSecret(t, stdout+stderr)
		if strings.Contains(stdout+stderr, "Zq7-short") {
			t.Errorf("join %q printed the weak passphrase", tc.args)
		}
	}
}

// TestProcessesJoinSecondSignal: a second SIGINT while the leave waits on
// a relay that never answers a PUT ends join at once, rather than after
// the leave's bound, and says the leave was not finished.
func TestProcessesJoinSecondSignal(t *testing.T) {
	t.Parallel()
	var puts atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.NotFound(w, r) // every slot is empty: the claim goes ahead
			return
		}
		puts.Add(1)
		// The write, and the tombstone after it, hang. The body is read
		// first: only then does the server notice the client hanging up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for handlers
	p := startProc(t, passEnv, "join", "--relay", srv.URL)
	p.WaitLine(proctest.Stdout, announcedLine, readyTimeout)
	waitFor(t, "the claim's write", func() bool { return puts.Load() > 0 })
	n := puts.Load()
	p.Signal(os.Interrupt)
	waitFor(t, "the tombstone's write", func() bool { return puts.Load() > n })
	// The leave is now waiting on the hung PUT, for up to its bound
	// (seconds); without the second signal, join would wait it out.
	took, err := p.Stop(os.Interrupt, stopTimeout)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("after a second SIGINT: %v, want exit 1\n%s", err, p.Output())
	}
	if took > 2*time.Second {
		t.Errorf("join took %v to exit after the second SIGINT", took)
	}
	p.WaitLine(proctest.Stderr, regexp.MustCompile(`^phrasemeet join: interrupted again`), time.Second)
	assertNoSecret(t, p.Output())
}
