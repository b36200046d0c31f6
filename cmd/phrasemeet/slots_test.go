package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The can-sync derivation's independent check value (the notes' slots.md):
// slot 0 of "correct horse battery staple".
const (
	horsePassphrase = "correct horse battery staple"
	horseSlot0      = "d8pif5ack19jpicwe8mb6qa7oqpckeeqx5gzzx9t58x4dc7syqwy"
)

// testRelay starts a real pkarr relay in-process, rate limits off (every
// test request comes from 127.0.0.1), and returns its URL.
func testRelay(t *testing.T) string {
	t.Helper()
	h, err := pkarrrelay.NewHandler(pkarrrelay.NewMemoryStore(10_000),
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
		pkarrrelay.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// tripwire is a loopback HTTP server that counts every request it gets:
// given as --relay, it proves a command made no network request.
func tripwire(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "tripwire", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

// passFile writes a passphrase file with the given content and mode.
func passFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

var keyLine = regexp.MustCompile(`^(\d+)  ([13456789abcdefghijkmnopqrstuwxyz]{52})$`)

// keysOf parses --keys-only output: one "INDEX  KEY" line per slot, in
// order from 0.
func keysOf(t *testing.T, stdout string) []string {
	t.Helper()
	var keys []string
	for i, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		m := keyLine.FindStringSubmatch(l)
		if m == nil || m[1] != strconv.Itoa(i) {
			t.Fatalf("line %d of --keys-only output is %q\n%s", i, l, stdout)
		}
		keys = append(keys, m[2])
	}
	return keys
}

func TestSlotsKeysOnlyCanSync(t *testing.T) {
	relay, requests := tripwire(t)
	file := passFile(t, horsePassphrase+"\n", 0o600)
	for name, tc := range map[string]struct {
		vars map[string]string
		args []string
	}{
		"env":  {map[string]string{passphraseEnv: horsePassphrase}, nil},
		"file": {nil, []string{"--passphrase-file", file}},
		// The flag beats the environment, as --relay beats PHRASEMEET_RELAYS.
		"file over env": {map[string]string{passphraseEnv: "another group entirely"}, []string{"--passphrase-file", file}},
	} {
		args := append([]string{"slots", "--profile", "can-sync", "--keys-only", "--relay", relay}, tc.args...)
		code, stdout, stderr := runCLI(t, tc.vars, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		keys := keysOf(t, stdout)
		if len(keys) != slotdiscovery.CanSyncSlots || keys[0] != horseSlot0 {
			t.Errorf("%s: slot keys %q, want %d with slot 0 %s", name, keys, slotdiscovery.CanSyncSlots, horseSlot0)
		}
		for i, k := range keys {
			if want := slotdiscovery.CanSyncSlotKey([]byte(horsePassphrase), i).PublicKey().String(); k != want {
				t.Errorf("%s: slot %d key %s, the library says %s", name, i, k, want)
			}
		}
		if strings.Contains(stdout+stderr, horsePassphrase) {
			t.Errorf("%s: the passphrase was printed", name)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("--keys-only made %d requests to the relay", n)
	}
}

func TestSlotsKeysOnlyDefault(t *testing.T) {
	relay, requests := tripwire(t)
	const pass = "tangerine orbit whistle canyon"
	vars := map[string]string{passphraseEnv: pass}
	keys := func(args ...string) []string {
		t.Helper()
		code, stdout, stderr := runCLI(t, vars, append([]string{"slots", "--keys-only", "--relay", relay}, args...)...)
		if code != 0 {
			t.Fatalf("slots %q: exit %d: %s", args, code, stderr)
		}
		if !strings.Contains(stderr, "deriving keys (Argon2id t=3 m=64MiB p=4)") {
			t.Errorf("no KDF status line on stderr: %q", stderr)
		}
		if strings.Contains(stdout+stderr, pass) {
			t.Errorf("slots %q printed the passphrase", args)
		}
		return keysOf(t, stdout)
	}
	base := keys()
	if len(base) != defaultKeysShown {
		t.Fatalf("%d keys, want %d", len(base), defaultKeysShown)
	}
	if again := keys(); strings.Join(again, " ") != strings.Join(base, " ") {
		t.Fatalf("not deterministic: %q then %q", base, again)
	}
	if three := keys("--slots", "3"); strings.Join(three, " ") != strings.Join(base[:3], " ") {
		t.Errorf("--slots 3 gave %q, want the first three of %q", three, base)
	}
	// The library's derivation is the reference.
	g, err := slotdiscovery.DeriveGroup([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if want := g.SlotKey(0).PublicKey().String(); base[0] != want {
		t.Errorf("slot 0 %s, the library says %s", base[0], want)
	}
	// Another application, or a namespace, is another group.
	other := keys("--app", "someone-else")
	ns := keys("--namespace", "room-1")
	nsEmpty := keys("--namespace", "")
	seen := map[string]string{}
	for name, ks := range map[string][]string{"default": base, "--app": other, "--namespace room-1": ns, `--namespace ""`: nsEmpty} {
		for _, k := range ks {
			if prev, dup := seen[k]; dup {
				t.Errorf("%s and %s share slot key %s", prev, name, k)
			}
			seen[k] = name
		}
	}
	if want := g.Namespace("room-1").SlotKey(0).PublicKey().String(); ns[0] != want {
		t.Errorf("--namespace room-1 slot 0 %s, the library says %s", ns[0], want)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("--keys-only made %d requests to the relay", n)
	}
}

// shiftedClock is the real clock set back by ago: timers run in real
// time, but every signed time is old, as a crashed peer's entry is.
type shiftedClock struct {
	clockwork.Clock
	ago time.Duration
}

func (c shiftedClock) Now() time.Time                  { return c.Clock.Now().Add(-c.ago) }
func (c shiftedClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c shiftedClock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// TestSlotsTable puts a live peer and a long-silent one (signed ten
// minutes ago) in a real relay with the library, for each profile, and
// checks that slots shows both with their IDs, states and addresses.
func TestSlotsTable(t *testing.T) {
	ctx := context.Background()
	relay := testRelay(t)
	client := newTestClient(t, relay)
	const pass = "violet harbour seventeen lanterns"
	vars := map[string]string{passphraseEnv: pass}
	old := shiftedClock{clockwork.NewRealClock(), 10 * time.Minute}
	live, liveKey := mustKeyID(t)
	stale, staleKey := mustKeyID(t)

	t.Run("default", func(t *testing.T) {
		g, err := slotdiscovery.DeriveGroup([]byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		announce := func(id string, addrs []string, opts ...slotdiscovery.Option) *slotdiscovery.Discoverer {
			d, err := slotdiscovery.New(client, g, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close(context.Background()) })
			if _, err := d.Announce(ctx, discovery.Record{ID: id, Addrs: addrs}); err != nil {
				t.Fatal(err)
			}
			// Slot says where the claim goes, possibly before any write:
			// wait for the entry to be on the relay.
			waitFor(t, "the relay to hold "+id, func() bool {
				i := d.Slot(id)
				return i >= 0 && slotHolds(t, client, g, i, id)
			})
			return d
		}
		// The live peer first: a newcomer drops aged-out entries from a
		// slot it writes, while the silent peer, whose clock is behind,
		// takes the live peer's packet for one stamped in the future,
		// leaves that slot alone and settles elsewhere.
		announce(live, []string{"/ip4/192.0.2.7/udp/4001/quic-v1"}, slotdiscovery.WithSigner(liveKey))
		announce(stale, nil, slotdiscovery.WithClock(old), slotdiscovery.WithSigner(staleKey))

		var stdout string
		waitFor(t, "both members in the table", func() bool {
			code, out, stderr := runCLI(t, vars, "slots", "--relay", relay, "--slots", "7")
			if code != 0 {
				t.Fatalf("slots: exit %d: %s", code, stderr)
			}
			stdout = out
			return strings.Contains(out, live) && strings.Contains(out, stale)
		})
		// Which slot each took is the library's business: the rows are
		// found by their members.
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^\d+ +\S{52}  live\s+\d+s\n      - live\s+\d+s  ` + live + ` \[/ip4/192.0.2.7/udp/4001/quic-v1\]$`),
			regexp.MustCompile(`(?m)^\d+ +\S{52}  stale\s+10m\d+s\n      - stale\s+10m\d+s  ` + stale + `$`),
			regexp.MustCompile(`(?m)^0     ` + g.SlotKey(0).PublicKey().String() + `  `),
		} {
			if !want.MatchString(stdout) {
				t.Errorf("table lacks %s:\n%s", want, stdout)
			}
		}
		if strings.Contains(stdout, pass) {
			t.Error("the passphrase was printed")
		}

		rows := slotsJSON(t, vars, "--relay", relay, "--slots", "7")
		if len(rows) < 3 || rows[0].Key != g.SlotKey(0).PublicKey().String() {
			t.Fatalf("--json: %+v", rows)
		}
		found := map[string]bool{}
		for _, r := range rows {
			for _, m := range r.Members {
				switch m.ID {
				case live:
					found[live] = true
					if r.State != "live" || r.AgeSeconds == nil || m.State != "live" || m.AgeSeconds > 60 || strings.Join(m.Addrs, " ") != "/ip4/192.0.2.7/udp/4001/quic-v1" {
						t.Errorf("--json live member in slot %d: %+v", r.Index, m)
					}
				case stale:
					found[stale] = true
					if r.State != "stale" || m.State != "stale" || m.AgeSeconds < 600 || m.Addrs == nil {
						t.Errorf("--json stale member in slot %d (%s): %+v", r.Index, r.State, m)
					}
				}
			}
		}
		if !found[live] || !found[stale] {
			t.Errorf("--json lacks a member: %+v", rows)
		}
	})

	t.Run("can-sync", func(t *testing.T) {
		announce := func(id string, opts ...slotdiscovery.Option) {
			c, err := slotdiscovery.NewCanSync(client, []byte(pass), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(context.Background()) })
			if _, err := c.Announce(ctx, discovery.Record{ID: id}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a slot for "+id, func() bool { return canSyncSlotOf(t, client, pass, id) >= 0 })
		}
		// One after the other, so that they do not race for slot 0.
		announce(stale, slotdiscovery.WithClock(old))
		announce(live)
		code, stdout, stderr := runCLI(t, vars, "slots", "--profile", "can-sync", "--relay", relay)
		if code != 0 {
			t.Fatalf("slots: exit %d: %s", code, stderr)
		}
		key := func(i int) string { return slotdiscovery.CanSyncSlotKey([]byte(pass), i).PublicKey().String() }
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^0     ` + key(0) + `  stale\s+10m\d+s\n      - stale\s+10m\d+s  ` + stale + `$`),
			regexp.MustCompile(`(?m)^1     ` + key(1) + `  live\s+\d+s\n      - live\s+\d+s  ` + live + `$`),
			regexp.MustCompile(`(?m)^7     ` + key(7) + `  empty\s+-$`),
		} {
			if !want.MatchString(stdout) {
				t.Errorf("table lacks %s:\n%s", want, stdout)
			}
		}
		if strings.Contains(stdout+stderr, pass) {
			t.Error("the passphrase was printed")
		}

		rows := slotsJSON(t, vars, "--profile", "can-sync", "--relay", relay)
		if len(rows) != slotdiscovery.CanSyncSlots {
			t.Fatalf("--json: %d rows, want %d", len(rows), slotdiscovery.CanSyncSlots)
		}
		for i, want := range map[int]struct {
			state, member string
		}{0: {"stale", stale}, 1: {"live", live}, 7: {"empty", ""}} {
			r := rows[i]
			if r.Key != key(i) || r.State != want.state {
				t.Errorf("--json slot %d: %+v, want state %s", i, r, want.state)
			}
			switch {
			case want.member == "" && (len(r.Members) != 0 || r.Packet != nil || r.AgeSeconds != nil):
				t.Errorf("--json empty slot %d: %+v", i, r)
			case want.member != "" && (len(r.Members) != 1 || r.Members[0].ID != want.member || r.Members[0].State != want.state):
				t.Errorf("--json slot %d members: %+v, want %s %s", i, r.Members, want.state, want.member)
			}
		}
	})
}

// slotJSON is one line of slots --json, as a consumer would declare it.
type slotJSON struct {
	Index      int     `json:"index"`
	Key        string  `json:"key"`
	State      string  `json:"state"`
	Packet     *string `json:"packet"`
	AgeSeconds *int64  `json:"age_seconds"`
	Members    []struct {
		ID         string   `json:"id"`
		Addrs      []string `json:"addrs"`
		State      string   `json:"state"`
		Seen       string   `json:"seen"`
		AgeSeconds int64    `json:"age_seconds"`
	} `json:"members"`
	Foreign  int    `json:"foreign"`
	Unproven int    `json:"unproven"`
	Error    string `json:"error"`
	Time     string `json:"time"`
}

// slotsJSON runs slots --json and parses its lines, checking what every
// line must have: consecutive indexes from 0, a time, arrays rather than
// nulls, and nothing on stderr.
func slotsJSON(t *testing.T, vars map[string]string, args ...string) []slotJSON {
	t.Helper()
	code, stdout, stderr := runCLI(t, vars, append([]string{"slots", "--json"}, args...)...)
	if code != 0 || stderr != "" {
		t.Fatalf("slots --json %q: exit %d, stderr %q", args, code, stderr)
	}
	var rows []slotJSON
	for i, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		var r slotJSON
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r.Index != i || r.Time == "" || r.Members == nil || !strings.Contains(l, `"members":[`) {
			t.Fatalf("line %d is %q", i, l)
		}
		for _, m := range r.Members {
			if m.Addrs == nil || m.Seen == "" {
				t.Fatalf("member without addrs array or seen: %q", l)
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// TestSlotsKeysOnlyJSON: --keys-only --json prints {"index","key"} per
// slot, the same keys as the plain form.
func TestSlotsKeysOnlyJSON(t *testing.T) {
	vars := map[string]string{passphraseEnv: horsePassphrase}
	_, plain, _ := runCLI(t, vars, "slots", "--profile", "can-sync", "--keys-only")
	code, stdout, stderr := runCLI(t, vars, "slots", "--profile", "can-sync", "--keys-only", "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var got []string
	for i, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		var k struct {
			Index *int   `json:"index"`
			Key   string `json:"key"`
		}
		if err := json.Unmarshal([]byte(l), &k); err != nil || k.Index == nil || *k.Index != i || strings.Count(l, ":") != 2 {
			t.Fatalf("line %d is %q (%v)", i, l, err)
		}
		got = append(got, k.Key)
	}
	if want := keysOf(t, plain); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("--json keys %q, plain keys %q", got, want)
	}
}

// TestHostilePeerTextIsQuoted: an ID and an address holding a newline and
// terminal escapes (anyone with the passphrase can announce them) are
// printed quoted by slots and join, never raw: no forged line, no escape
// reaching the terminal. JSON escapes them itself.
func TestHostilePeerTextIsQuoted(t *testing.T) {
	relay := testRelay(t)
	client := newTestClient(t, relay)
	vars := map[string]string{passphraseEnv: secretPhrase}
	const (
		evilID   = "evil\nfound forged via slots\x1b[2J"
		evilAddr = "\x1b]0;owned\x07 /ip4/192.0.2.9/tcp/1"
	)
	g, err := slotdiscovery.DeriveGroup([]byte(secretPhrase))
	if err != nil {
		t.Fatal(err)
	}
	d, err := slotdiscovery.New(client, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	if _, err := d.Announce(context.Background(), discovery.Record{ID: evilID, Addrs: []string{evilAddr}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hostile entry", func() bool { return d.Slot(evilID) >= 0 })

	j := startJoin(t, vars, "--relay", relay)
	j.wait(regexp.MustCompile(`(?m)^found "evil\\nfound forged via slots\\x1b\[2J" \["\\x1b\]0;owned\\a /ip4/192\.0\.2\.9/tcp/1"\] via slots$`))
	// Two peers claiming at once may collide and retry: poll until the
	// table shows both.
	var stdout, stderr string
	waitFor(t, "the hostile member in the table", func() bool {
		var code int
		code, stdout, stderr = runCLI(t, vars, "slots", "--relay", relay)
		if code != 0 {
			t.Fatalf("slots: exit %d: %s", code, stderr)
		}
		return strings.Contains(stdout, "evil")
	})
	if !strings.Contains(stdout, `  "evil\nfound forged via slots\x1b[2J" ["\x1b]0;owned\a /ip4/192.0.2.9/tcp/1"]`) {
		t.Errorf("slots does not quote the hostile member:\n%s", stdout)
	}
	for name, out := range map[string]string{"join": j.stdout.String() + j.stderr.String(), "slots": stdout + stderr} {
		if strings.ContainsAny(out, "\x1b\x07") || regexp.MustCompile(`(?m)^found forged`).MatchString(out) {
			t.Errorf("%s printed the hostile text raw:\n%q", name, out)
		}
	}
	// JSON carries the exact strings.
	waitFor(t, "slots --json to carry the hostile member verbatim", func() bool {
		for _, r := range slotsJSON(t, vars, "--relay", relay) {
			for _, m := range r.Members {
				if m.ID == evilID && len(m.Addrs) == 1 && m.Addrs[0] == evilAddr {
					return true
				}
			}
		}
		return false
	})
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/192.0.2.1/udp/1/quic-v1": "/ip4/192.0.2.1/udp/1/quic-v1",
		"café":                         "café", // printable Unicode stays as it is
		"":                             `""`,
		"a b":                          `"a b"`,
		"a\nb":                         `"a\nb"`,
		"\x1b[31m":                     `"\x1b[31m"`,
		"abc\u202eevil":                `"abc\u202eevil"`, // a bidi override reorders what follows
		"\xff":                         `"\xff"`,
		"\u00a0":                       `"\u00a0"`, // a no-break space looks like a separator
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSlotsUnreadable(t *testing.T) {
	vars := map[string]string{passphraseEnv: horsePassphrase}
	code, stdout, stderr := runCLI(t, vars, "slots", "--profile", "can-sync", "--relay", deadRelay)
	if code != 1 || !strings.Contains(stderr, "no slot could be read") || strings.Count(stdout, "unreadable") != slotdiscovery.CanSyncSlots {
		t.Fatalf("slots against a dead relay: exit %d\nstdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
	assertCleanError(t, stderr)
}

func TestSlotsUsageErrors(t *testing.T) {
	vars := map[string]string{passphraseEnv: horsePassphrase}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--profile", "fancy"}, `--profile "fancy"`},
		{[]string{"--profile", "can-sync", "--slots", "3"}, "exactly 8 slots"},
		{[]string{"--profile", "can-sync", "--app", "x"}, "--app is for the default profile"},
		{[]string{"--profile", "can-sync", "--namespace", "x"}, "--namespace is for the default profile"},
		{[]string{"--app", ""}, "--app must not be empty"},
		{[]string{"--slots", "-1"}, "--slots -1"},
		{[]string{"--slots", "32"}, "--slots 32: want 1 to 31 when reading"},
		{[]string{"--keys-only", "--slots", "131072"}, "--slots 131072: want 1 to 131071"},
		{[]string{"--relay", "none"}, "nothing to talk to"},
		{[]string{"--bootstrap", "127.0.0.1:1"}, "--bootstrap needs --dht"},
	} {
		code, _, stderr := runCLI(t, vars, append([]string{"slots"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("slots %q: exit %d %q, want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// waitFor polls cond for up to readyTimeout: generous, as the machine may
// be loaded, and a passing test does not wait it out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// canSyncSlotOf returns the can-sync slot holding id, or -1.
func canSyncSlotOf(t *testing.T, client *pkarrclient.Client, pass, id string) int {
	t.Helper()
	for i := range slotdiscovery.CanSyncSlots {
		key := slotdiscovery.CanSyncSlotKey([]byte(pass), i).PublicKey()
		got, _, err := slotdiscovery.ReadCanSyncSlot(context.Background(), client, key)
		if err == nil && got == id {
			return i
		}
	}
	return -1
}

// mustRandomID returns join's default ID: the hex of a new key.
func mustRandomID(t *testing.T) string {
	t.Helper()
	id, _ := mustKeyID(t)
	return id
}

// mustKeyID returns join's default ID and the signer of its key, for a
// test peer that announces it in the default profile.
func mustKeyID(t *testing.T) (string, discovery.Signer) {
	t.Helper()
	id, signer, err := joinIdentity("", "", profileDefault)
	if err != nil || signer == nil {
		t.Fatal(err)
	}
	return id, signer
}

func TestRandomIDIsACanSyncID(t *testing.T) {
	for range 20 {
		id, signer := mustKeyID(t)
		if b, err := hex.DecodeString(id); err != nil || len(b) != 32 || strings.ToLower(id) != id {
			t.Fatalf("random ID %q is not 64 lowercase hex digits", id)
		}
		if got, err := canSyncID(id); err != nil || got != id {
			t.Fatalf("random ID %q refused for can-sync: %v", id, err)
		}
		// And its key is at hand: the default profile signs with it.
		proof, err := signer.Sign(id, []byte("m"))
		if err != nil || discovery.CheckProof(idSchemes(), id, []byte("m"), proof) != nil {
			t.Fatalf("random ID %q: its signer's proof does not verify (%v)", id, err)
		}
	}
}
