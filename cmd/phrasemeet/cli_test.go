package main

import (
	"regexp"
	"strings"
	"testing"
)

// oneDashFlag matches a flag listed the way the flag package lists it,
// "  -name", which users of gh, restic and age do not type.
var oneDashFlag = regexp.MustCompile(`(?m)^\s+-[^-\s]`)

// TestHelpGoesToStdout: asking for help is not an error, so the text goes
// to standard output (where `| less` finds it) and the exit status is 0;
// every flag is listed with the two dashes users type.
func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "commands:") {
			t.Errorf("phrasemeet %q: exit %d, stdout %q, stderr %q; want exit 0 and the command list on stdout only", args, code, stdout, stderr)
		}
	}
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "--help"}, {"help", c.name}} {
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != 0 || stderr != "" || !strings.Contains(stdout, "usage: phrasemeet "+c.name) {
				t.Errorf("phrasemeet %q: exit %d, stdout %q, stderr %q; want exit 0 and the usage on stdout only", args, code, stdout, stderr)
				continue
			}
			if !strings.Contains(stdout, "\n  --") {
				t.Errorf("phrasemeet %q lists no --flag:\n%s", args, stdout)
			}
			if m := oneDashFlag.FindString(stdout); m != "" {
				t.Errorf("phrasemeet %q lists a flag with one dash (%q):\n%s", args, m, stdout)
			}
		}
	}
}

// TestHelpUnknownCommand: help for a command that does not exist, or for
// two at once, is a wrong command line.
func TestHelpUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "keygen", "resolve"}, "at most one command"},
	} {
		code, stdout, stderr := runCLI(t, nil, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("phrasemeet %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}
