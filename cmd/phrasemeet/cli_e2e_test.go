package main

import (
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
