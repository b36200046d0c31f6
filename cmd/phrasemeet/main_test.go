package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// deadRelay is the relay every test command falls back to: a loopback port
// nothing listens on, so a test that forgets --relay fails fast instead of
// reaching for the public relays.
const deadRelay = "http://127.0.0.1:1"

// deadBootstrap is the DHT bootstrap node every test command falls back
// to, for the same reason: a command that forgets --bootstrap asks a dead
// loopback port, never the public routers.
const deadBootstrap = "127.0.0.1:1"

// runCLI runs one command line in-process with its own environment. Its
// DHT sockets refuse to send anywhere but loopback and its resolver
// refuses every lookup; either attempt fails the test.
func runCLI(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	e, out, errb := testEnv(t, vars, nil)
	code = run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

// testEnv is the environment runCLI gives a command: PHRASEMEET_RELAYS and
// PHRASEMEET_BOOTSTRAP default to dead loopback ports, and every DHT
// socket goes through a loopback guard (checked when the test ends) and,
// when sent is not nil, records where each datagram went.
func testEnv(t *testing.T, vars map[string]string, sent *sentLog) (env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		switch k {
		case "PHRASEMEET_RELAYS":
			return deadRelay
		case bootstrapEnv:
			return deadBootstrap
		}
		return ""
	}
	guard := &mainlinetest.Guard{}
	t.Cleanup(func() { guard.Check(t) })
	listen := func(network, addr string) (net.PacketConn, error) {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return nil, err
		}
		if sent != nil {
			c = &recordingConn{PacketConn: c, log: sent}
		}
		return guard.Conn(c), nil
	}
	return env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: getenv,
		listenUDP: listen, resolver: guard}, &out, &errb
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists")
	os.WriteFile(existing, []byte("x"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: phrasemeet"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"keygen"}, 2, "--out FILE is required"},
		{[]string{"keygen", "--out", existing}, 1, "file exists"},
		{[]string{"keygen", "--out", filepath.Join(dir, "k"), "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"keygen", "--bogus"}, 2, "unknown flag --bogus"},
		{[]string{"publish", "--txt", "a=b", "--relay", "http://127.0.0.1:1"}, 2, "--secret-file is required"},
		{[]string{"publish", "--secret-file", existing}, 2, "nothing to publish"},
		{[]string{"publish", "--secret-file", existing, "--txt", "novalue"}, 2, "want NAME=VALUE"},
		{[]string{"publish", "--secret-file", existing, "--txt", "a=b", "--ttl", "4294967296"}, 2, "--ttl"},
		{[]string{"publish", "--secret-file", existing, "--txt", "a=b", "--relay", "http://127.0.0.1:1"}, 1, "want a 32-byte seed"},
		{[]string{"resolve"}, 2, "want exactly one KEY"},
		{[]string{"resolve", "not-a-key"}, 2, "invalid public key"},
		{[]string{"resolve", "--relay", "ftp://x", "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no"}, 2, "relay"},
		{[]string{"relay", "--trusted-proxy", "nonsense"}, 2, "--trusted-proxy"},
		{[]string{"relay", "--max-packets", "0"}, 2, "--max-packets"},
		{[]string{"relay", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"relay", "--listen", "127.0.0.1:-5"}, 1, "listening"},
	} {
		code, _, stderr := runCLI(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("phrasemeet %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") > 0 && tc.code != 0 && len(tc.args) > 0 {
			t.Errorf("phrasemeet %q: error is not one line: %q", tc.args, stderr)
		}
	}
}

func TestKeygenWritesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	code, stdout, stderr := runCLI(t, nil, "keygen", "--out", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	pk, err := pkarrclient.ParsePublicKey(strings.TrimSpace(stdout))
	if err != nil {
		t.Fatalf("keygen printed %q: %v", stdout, err)
	}
	sk, err := pkarrclient.LoadSecretKey(path)
	if err != nil || sk.PublicKey() != pk {
		t.Fatalf("file does not hold the printed key: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if strings.Contains(stdout+stderr, string(sk.Seed())) {
		t.Fatal("seed printed")
	}
}

func TestRelayURLs(t *testing.T) {
	env := func(v string) env { return env{getenv: func(string) string { return v }} }
	public := pkarrclient.DefaultRelays()
	for _, tc := range []struct {
		flags []string
		env   string
		want  []string
	}{
		{[]string{"http://a"}, "http://b", []string{"http://a"}},
		{nil, " http://b , http://c ", []string{"http://b", "http://c"}},
		{nil, "", public},
		{[]string{"public", "http://a"}, "", append(append([]string{}, public...), "http://a")},
	} {
		got, err := relayURLs(tc.flags, env(tc.env))
		if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("relayURLs(%q, env %q) = %q, want %q", tc.flags, tc.env, got, tc.want)
		}
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	fs := newFlagSet("x", "", &bytes.Buffer{})
	var relays listFlag
	fs.Var(&relays, "relay", "")
	rest, err := parseFlags(fs, []string{"KEY", "--relay", "http://a,http://b", "--", "--relay"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rest, " ") != "KEY --relay" || strings.Join(relays, " ") != "http://a http://b" {
		t.Fatalf("rest %q relays %q", rest, relays)
	}
}

func TestForgottenRelayStaysOnLoopback(t *testing.T) {
	code, _, stderr := runCLI(t, nil, "resolve", "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no")
	if code != exitNoAnswer || !strings.Contains(stderr, deadRelay) {
		t.Fatalf("resolve without --relay: exit %d %q; want a failure naming %s", code, stderr, deadRelay)
	}
}

func TestRelayURLPasswordNeverPrinted(t *testing.T) {
	for _, relay := range []string{"https://user:s3cret@relay example/pkarr", "ftp://user:s3cret@relay.example/"} {
		code, stdout, stderr := runCLI(t, nil, "resolve", "--relay", relay, "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no")
		if code != 2 || strings.Contains(stdout+stderr, "s3cret") {
			t.Errorf("--relay %q: exit %d, output %q", relay, code, stdout+stderr)
		}
	}
}
