package main

import (
	"debug/buildinfo"
	"net"
	"strings"
	"testing"

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
		for _, extra := range [][]string{nil} {
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
