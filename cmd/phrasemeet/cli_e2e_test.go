package main

import (
	"debug/buildinfo"
	"strings"
	"testing"
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
