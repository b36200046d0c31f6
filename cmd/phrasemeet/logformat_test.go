package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
)

// loggingCommands are the commands that log, with what each needs to get
// as far as building its logger.
var loggingCommands = [][]string{
	{"relay", "--listen", "127.0.0.1:0"},
	{"dht-node", "--listen", "127.0.0.1:0", "--bootstrap", "none"},
	{"join", "--relay", deadRelay},
	{"demo"},
}

// TestLogFormatUsage: --log-format takes text or json; anything else is
// a wrong command line, told in one line that names the flag and the
// choices. The commands run with their context already ended, as after a
// signal, so one that took the value would stop rather than serve.
func TestLogFormatUsage(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, cmd := range loggingCommands {
		for _, bad := range []string{"yaml", "", "JSON\nx"} {
			args := append(append([]string{}, cmd...), "--log-format", bad)
			e, out, errb := testEnv(t, map[string]string{passphraseEnv: secretPhrase}, nil)
			code := run(ended, e, args)
			stdout, stderr := out.String(), errb.String()
			if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 ||
				!strings.Contains(stderr, "--log-format") || !strings.Contains(stderr, "want text or json") {
				t.Errorf("phrasemeet %q: exit %d, stdout %q, stderr %q; want exit 2 and one line naming --log-format and its choices",
					args, code, stdout, stderr)
			}
		}
		if _, help, _ := runCLI(t, nil, cmd[0], "--help"); !strings.Contains(help, "  --log-format FORMAT") {
			t.Errorf("phrasemeet %s --help lists no --log-format:\n%s", cmd[0], help)
		}
	}
}

// jsonLogLines checks that every line of log is a JSON object as
// slog.JSONHandler writes it, and returns their messages.
func jsonLogLines(t *testing.T, what, log string) []string {
	t.Helper()
	var msgs []string
	for _, l := range strings.Split(strings.TrimRight(log, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["time"] == nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("%s: log line %q is not a JSON log record (%v)", what, l, err)
			continue
		}
		msgs = append(msgs, m["msg"].(string))
	}
	return msgs
}

// TestProcessesLogFormatJSON runs the relay and a DHT node as processes
// with --log-format json: every line they log is a JSON record, their
// stops included.
func TestProcessesLogFormatJSON(t *testing.T) {
	t.Parallel()
	relay := startProc(t, nil, "relay", "--listen", "127.0.0.1:0", "--store", "memory", "--log-format", "json")
	relay.WaitLine(proctest.Stdout, servingLine, readyTimeout)
	node, _ := startDHTNode(t, "none", "--log-format", "json")
	for name, p := range map[string]*proctest.Proc{"relay": relay, "dht-node": node} {
		if _, err := p.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
			t.Fatalf("%s exit after SIGTERM: %v\n%s", name, err, p.Output())
		}
		msgs := jsonLogLines(t, name, p.Text(proctest.Stderr))
		if !strings.Contains(strings.Join(msgs, "\n"), name+" stopped") {
			t.Errorf("%s logged %q; want its stop among them", name, msgs)
		}
	}
}

// TestJoinLogFormatJSON: join's library log, at debug, is JSON records
// with --log-format json, and the passphrase is in none of it.
func TestJoinLogFormatJSON(t *testing.T) {
	relay := testRelay(t)
	j := startJoin(t, map[string]string{passphraseEnv: secretPhrase}, "--relay", relay, "--json",
		"--log-level", "debug", "--log-format", "json")
	j.wait(announcedJSON)
	if code := j.stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, j.stderr)
	}
	if msgs := jsonLogLines(t, "join", j.stderr.String()); len(msgs) == 0 {
		t.Errorf("join --log-level debug logged nothing")
	}
	if out := j.stdout.String() + j.stderr.String(); strings.Contains(out, secretPhrase) {
		t.Errorf("join printed the passphrase:\n%s", out)
	}
}

// TestDemoLogFormatJSON: the demo's log (its relay's and its hosts'
// discovery), at debug, is JSON records with --log-format json, and the
// group's passphrase is in none of it.
func TestDemoLogFormatJSON(t *testing.T) {
	const pass = "demo log test passphrase, not random"
	e, out, errb := testEnv(t, nil, nil)
	logger, err := newLogger(errb, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := demoConfig{peers: 2, profile: profileDefault, json: true, timeout: 90 * time.Second, listen: "127.0.0.1:0",
		passphrase: []byte(pass), logger: logger}
	if err := runDemoWith(context.Background(), e, cfg); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, errb)
	}
	if msgs := jsonLogLines(t, "demo", errb.String()); len(msgs) == 0 {
		t.Errorf("demo at --log-level debug logged nothing")
	}
	if strings.Contains(out.String()+errb.String(), pass) {
		t.Errorf("the demo printed its passphrase")
	}
}
