package main

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// TestProcessHelp runs the real binary: help is on stdout with status 0
// whichever way it is asked for.
func TestProcessHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "commands:"},
		{[]string{"-h"}, "commands:"},
		{[]string{"help"}, "commands:"},
		{[]string{"help", "resolve"}, "usage: phrasemeet resolve"},
		{[]string{"resolve", "--help"}, "usage: phrasemeet resolve"},
		{[]string{"relay", "-h"}, "  --listen"},
	} {
		code, stdout, stderr := cli(t, nil, tc.args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, tc.want) {
			t.Errorf("phrasemeet %q: exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout only", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// TestProcessVersion runs the real binary: `version` and `--version`
// print the module version and VCS revision its build recorded (read back
// from the file, as `go version -m` does).
func TestProcessVersion(t *testing.T) {
	t.Parallel()
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"phrasemeet " + info.Main.Version, info.GoVersion, "revision unknown"}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			want[2] = "revision " + s.Value
		}
	}
	var first string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := cli(t, nil, args...)
		if code != 0 || stderr != "" {
			t.Errorf("phrasemeet %q: exit %d, stderr %q", args, code, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Errorf("phrasemeet %q printed %q, lacking %q", args, stdout, w)
			}
		}
		if first == "" {
			first = stdout
		} else if stdout != first {
			t.Errorf("version printed %q, --version %q", first, stdout)
		}
	}
}

// TestProcessUnknownFlag runs the real binary: an unknown flag is exit 2
// and one line on stderr that names it and points to -h.
func TestProcessUnknownFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"publish", "--secret", "k"}, "--secret"},
		{[]string{"--verbose", "resolve"}, "--verbose"},
	} {
		code, stdout, stderr := cli(t, nil, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "unknown flag "+tc.flag) || !strings.Contains(stderr, " -h") {
			t.Errorf("phrasemeet %q: exit %d, stdout %q, stderr %q; want exit 2 naming %s and -h", tc.args, code, stdout, stderr, tc.flag)
		}
		assertCleanError(t, stderr)
	}
}

// TestProcessResolveExitCodes runs the real binary against a real relay
// process: a key no relay has is exit 3, and no relay answering at all
// (a port that refuses, a listener that hangs up) is exit 4, so a script
// can tell "publish it" from "try later"; each with one line on stderr.
func TestProcessResolveExitCodes(t *testing.T) {
	t.Parallel()
	relay := startRelay(t, "memory")
	hangsUp := hangUpListener(t)
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := sk.PublicKey().String()
	for _, tc := range []struct {
		name   string
		relays string
		code   int
		want   string
	}{
		{"a relay without the key", relay.url, 3, "not found"},
		{"a relay without the key, one refusing", relay.url + "," + deadRelay, 3, "not found"},
		{"a refusing port", deadRelay, 4, "no relay answered"},
		{"a listener that hangs up", hangsUp, 4, "no relay answered"},
		{"both", deadRelay + "," + hangsUp, 4, "no relay answered"},
	} {
		for _, extra := range [][]string{nil, {"--json"}} {
			args := append([]string{"resolve", "--relay", tc.relays, key}, extra...)
			code, stdout, stderr := cli(t, nil, args...)
			if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s: phrasemeet %q: exit %d, stdout %q, stderr %q; want exit %d and %q on stderr", tc.name, args, code, stdout, stderr, tc.code, tc.want)
			}
			assertCleanError(t, stderr)
		}
	}
}

// hangUpListener is a relay URL whose listener accepts each connection
// and closes it at once, as a crashed relay behind a proxy may.
func hangUpListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}

// jsonLine decodes out, which must be exactly one JSON object on one
// line, and checks that it has exactly the fields named in keys.
func jsonLine(t *testing.T, what, out string, keys ...string) map[string]any {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("%s printed %q; want one JSON object on one line", what, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s printed %q: %v", what, out, err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	keys = slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, keys) {
		t.Errorf("%s printed the fields %q, want %q: %s", what, got, keys, out)
	}
	return m
}

// TestProcessesJSON runs keygen, publish and resolve with --json on the
// real binary against a relay process: each prints one JSON object on
// stdout with the documented field names and nothing on stderr; a failed
// publish still prints its outcomes, with the error on stderr.
func TestProcessesJSON(t *testing.T) {
	t.Parallel()
	relay := startRelay(t, "memory")
	keyFile := filepath.Join(t.TempDir(), "secret")

	code, stdout, stderr := cli(t, nil, "keygen", "--out", keyFile, "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("keygen --json: exit %d, stderr %q", code, stderr)
	}
	kg := jsonLine(t, "keygen --json", stdout, "key", "file")
	key, _ := kg["key"].(string)
	if _, err := pkarrclient.ParsePublicKey(key); err != nil || kg["file"] != keyFile {
		t.Fatalf("keygen --json: %v (%v)", kg, err)
	}

	code, stdout, stderr = cli(t, nil, "publish", "--json", "--secret-file", keyFile, "--relay", relay.url,
		"--txt", "_hello=wor\"ld", "--record", "@ 60 IN A 192.0.2.9", "--ttl", "120")
	if code != 0 || stderr != "" {
		t.Fatalf("publish --json: exit %d, stderr %q", code, stderr)
	}
	pub := jsonLine(t, "publish --json", stdout, "key", "timestamp", "time", "accepted", "outcomes")
	outcomes, _ := pub["outcomes"].([]any)
	if pub["key"] != key || pub["accepted"] != 1.0 || len(outcomes) != 1 {
		t.Fatalf("publish --json: %s", stdout)
	}
	o, _ := outcomes[0].(map[string]any)
	if o["backend"] != relay.url || o["ok"] != true || o["duration_ms"] == nil {
		t.Errorf("publish --json outcome: %v", o)
	}

	code, stdout, stderr = cli(t, nil, "resolve", "--json", "--relay", relay.url, key)
	if code != 0 || stderr != "" {
		t.Fatalf("resolve --json: exit %d, stderr %q", code, stderr)
	}
	res := jsonLine(t, "resolve --json", stdout, "key", "timestamp", "time", "records")
	if res["key"] != key || res["timestamp"] != pub["timestamp"] || res["time"] != pub["time"] {
		t.Errorf("resolve --json %s does not match publish --json %s", stdout, pub)
	}
	records, _ := res["records"].([]any)
	want := []map[string]any{
		{"name": "_hello." + key + ".", "ttl": 120.0, "class": "IN", "type": "TXT", "data": `"wor\"ld"`, "txt": `wor"ld`},
		{"name": key + ".", "ttl": 60.0, "class": "IN", "type": "A", "data": "192.0.2.9"},
	}
	if len(records) != len(want) {
		t.Fatalf("resolve --json records: %v", records)
	}
	for i, w := range want {
		if got, _ := records[i].(map[string]any); !maps.Equal(got, w) {
			t.Errorf("resolve --json record %d: %v, want %v", i, got, w)
		}
	}

	// A failure: the outcomes on stdout, the error on stderr, exit 1.
	code, stdout, stderr = cli(t, nil, "publish", "--json", "--secret-file", keyFile, "--relay", deadRelay, "--txt", "_a=b")
	if code != 1 {
		t.Fatalf("publish --json to a dead relay: exit %d, stderr %q", code, stderr)
	}
	assertCleanError(t, stderr)
	failed := jsonLine(t, "publish --json to a dead relay", stdout, "key", "timestamp", "time", "accepted", "outcomes")
	outcomes, _ = failed["outcomes"].([]any)
	if failed["accepted"] != 0.0 || len(outcomes) != 1 {
		t.Fatalf("publish --json to a dead relay: %s", stdout)
	}
	o, _ = outcomes[0].(map[string]any)
	if o["ok"] != false || o["error_kind"] != "unavailable" || !strings.Contains(fmt.Sprint(o["error"]), "refused") {
		t.Errorf("publish --json to a dead relay, outcome: %v", o)
	}
}

// TestProcessRelaySaysListeningOnce runs the real relay, with a circuit
// relay and its log at info: that it serves, and where, is said once, on
// stdout (the line scripts wait for), not again in the log.
func TestProcessRelaySaysListeningOnce(t *testing.T) {
	t.Parallel()
	r := startRelayProc(t, "--log-level", "info")
	if _, err := r.Stop(syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("relay exit after SIGTERM: %v\n%s", err, r.Output())
	}
	stdout, stderr := r.Text(proctest.Stdout), r.Text(proctest.Stderr)
	if n := strings.Count(stdout, "relay serving "+r.url); n != 1 {
		t.Errorf("stdout says %d times that the relay serves %s:\n%s", n, r.url, stdout)
	}
	said := []string{r.url, strings.TrimPrefix(r.url, "http://")}
	for _, a := range r.addrs {
		said = append(said, a.String())
		if n := strings.Count(stdout, "circuit relay serving "+a.String()+"\n"); n != 1 {
			t.Errorf("stdout says %d times that the circuit relay serves %s:\n%s", n, a, stdout)
		}
	}
	for _, s := range said {
		if strings.Contains(stderr, s) {
			t.Errorf("the log says again where the relay serves (%s):\n%s", s, stderr)
		}
	}
	for _, l := range strings.Split(stderr, "\n") {
		if regexp.MustCompile(`(?i)\b(started|serving|listening)\b`).MatchString(l) {
			t.Errorf("the log says again that the relay serves: %q", l)
		}
	}
	if !strings.Contains(stderr, `msg="relay stopped"`) {
		t.Errorf("the log lacks the relay's stop at info level:\n%s", stderr)
	}
}

// TestProcessDHTNodeSaysListeningOnce: dht-node says where it listens once,
// on stdout, as relay does; its log has the settings without the address.
func TestProcessDHTNodeSaysListeningOnce(t *testing.T) {
	t.Parallel()
	p, addr := startDHTNode(t, "none", "--log-level", "info")
	if _, err := p.Stop(syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("dht-node exit after SIGTERM: %v\n%s", err, p.Output())
	}
	stdout, stderr := p.Text(proctest.Stdout), p.Text(proctest.Stderr)
	if n := strings.Count(stdout, "dht-node listening on "+addr); n != 1 {
		t.Errorf("stdout says %d times that the node listens on %s:\n%s", n, addr, stdout)
	}
	for _, l := range strings.Split(stderr, "\n") {
		// The hint for a first node names its address as what others
		// bootstrap from: advice, not a second "listening".
		if strings.Contains(l, addr) && !strings.Contains(l, "--bootstrap "+addr) {
			t.Errorf("the log says again where the node listens (%s): %q", addr, l)
		}
	}
	if !strings.Contains(stderr, `msg="dht-node settings"`) {
		t.Errorf("the log lacks the node's settings at info level:\n%s", stderr)
	}
}
