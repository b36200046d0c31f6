package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/slotdiscovery"
)

// TestJoinShowsFingerprint: join prints the group's fingerprint before it
// announces (a status line on stderr; with --json a field of the
// "announced" object), the fingerprint of the group it actually joins:
// --namespace's sub-group has its own. Two people compare it on the phone
// to learn that they typed the same passphrase.
func TestJoinShowsFingerprint(t *testing.T) {
	relay := testRelay(t)
	vars := map[string]string{passphraseEnv: secretPhrase}
	root, err := slotdiscovery.DeriveGroup([]byte(secretPhrase))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"root", nil, root.Fingerprint()},
		{"namespace", []string{"--namespace", "room-7"}, root.Namespace("room-7").Fingerprint()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := startJoin(t, vars, append([]string{"--relay", relay}, tc.args...)...)
			j.wait(announcedLine)
			re := regexp.MustCompile(`(?m)^group fingerprint (\S+) `)
			m := re.FindStringSubmatch(j.stderr.String())
			if m == nil {
				t.Fatalf("no fingerprint line on stderr:\n%s", j.stderr)
			}
			if m[1] != tc.want {
				t.Fatalf("fingerprint %s, want %s", m[1], tc.want)
			}
			if strings.Contains(j.stdout.String()+j.stderr.String(), secretPhrase) {
				t.Fatal("join printed the passphrase")
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		j := startJoin(t, vars, "--relay", relay, "--json")
		j.wait(regexp.MustCompile(`^\{"event":"announced",[^\n]*"fingerprint":"` + regexp.QuoteMeta(root.Fingerprint()) + `"`))
		if s := j.stderr.String(); s != "" {
			t.Errorf("--json wrote to stderr: %q", s)
		}
	})
	if root.Fingerprint() == root.Namespace("room-7").Fingerprint() {
		t.Fatal("the namespace shares the root group's fingerprint")
	}
}
