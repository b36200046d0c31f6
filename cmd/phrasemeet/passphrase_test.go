package main

import (
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/internal/passphrase"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// secretPhrase is distinctive enough that finding it in any output can
// only mean the passphrase leaked.
const secretPhrase = "zebra-quartz-FLAMINGO-7731-nocturne"

func TestPassphraseFileTrimsOneNewline(t *testing.T) {
	slot0 := func(content string) string {
		t.Helper()
		file := passFile(t, content, 0o600)
		code, stdout, stderr := runCLI(t, nil, "slots", "--profile", "can-sync", "--keys-only", "--passphrase-file", file)
		if code != 0 {
			t.Fatalf("passphrase file %q: exit %d: %s", content, code, stderr)
		}
		return keysOf(t, stdout)[0]
	}
	for _, content := range []string{horsePassphrase, horsePassphrase + "\n", horsePassphrase + "\r\n"} {
		if got := slot0(content); got != horseSlot0 {
			t.Errorf("file %q: slot 0 %s, want %s", content, got, horseSlot0)
		}
	}
	// Only one newline goes; the rest is the passphrase's, as is any
	// other white space.
	for _, content := range []string{horsePassphrase + "\n\n", " " + horsePassphrase, horsePassphrase + " \n"} {
		if got := slot0(content); got == horseSlot0 {
			t.Errorf("file %q: slot 0 is that of the trimmed passphrase", content)
		}
	}
}

func TestPassphraseFileReadableByOthersRefused(t *testing.T) {
	file := passFile(t, secretPhrase+"\n", 0o644)
	code, stdout, stderr := runCLI(t, nil, "slots", "--keys-only", "--passphrase-file", file)
	if code != 1 || !strings.Contains(stderr, "accessible by other users") || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("mode 0644: exit %d %q", code, stderr)
	}
	assertNoSecret(t, stdout+stderr)
	assertCleanError(t, stderr)

	code, _, stderr = runCLI(t, nil, "slots", "--keys-only", "--passphrase-file", file+".missing")
	if code != 1 || !strings.Contains(stderr, "passphrase file") {
		t.Fatalf("missing file: exit %d %q", code, stderr)
	}
}

// TestPassphraseFileErrorsShowNoContent: every way reading the file can
// fail names the file, never what it holds.
func TestPassphraseFileErrorsShowNoContent(t *testing.T) {
	big := passFile(t, strings.Repeat(secretPhrase+"\n", passphrase.MaxFileSize/len(secretPhrase)+1), 0o600)
	dir := t.TempDir()
	for _, tc := range []struct {
		path, want string
	}{
		{big, "larger than 65536 bytes: not a passphrase"},
		{dir, "passphrase file " + dir + " is a directory, not a regular file"},
	} {
		code, stdout, stderr := runCLI(t, nil, "slots", "--profile", "can-sync", "--keys-only", "--passphrase-file", tc.path)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d %q, want exit 1 and %q", tc.path, code, stderr, tc.want)
		}
		assertNoSecret(t, stdout+stderr)
		assertCleanError(t, stderr)
	}
}

// TestPassphraseNeverFromArgv: a passphrase typed on the command line, as
// a flag or an argument, is refused as a usage error that does not repeat
// it.
func TestPassphraseNeverFromArgv(t *testing.T) {
	for _, cmd := range []string{"slots", "join"} {
		for _, args := range [][]string{
			{"--passphrase", secretPhrase},
			{"--passphrase=" + secretPhrase},
			{"-passphrase", secretPhrase},
			{"--relay", deadRelay, "--password=" + secretPhrase},
			{secretPhrase},
			{"--profile", "can-sync", secretPhrase},
		} {
			code, stdout, stderr := runCLI(t, nil, append([]string{cmd}, args...)...)
			if code != 2 || !strings.Contains(stderr, passphraseEnv) {
				t.Errorf("%s %q: exit %d %q; want exit 2 pointing to $%s", cmd, args, code, stderr, passphraseEnv)
			}
			assertNoSecret(t, stdout+stderr)
		}
	}
}

func TestPassphraseMissing(t *testing.T) {
	// runCLI's stdin is not a terminal: no prompt, and no line read from
	// it either.
	for _, cmd := range []string{"slots", "join"} {
		code, _, stderr := runCLI(t, nil, cmd, "--profile", "can-sync", "--relay", deadRelay)
		if code != 2 || !strings.Contains(stderr, "no passphrase") || !strings.Contains(stderr, "--passphrase-file") {
			t.Errorf("%s without a passphrase: exit %d %q", cmd, code, stderr)
		}
	}
}

// TestPassphraseRefused: the default profile applies the library's floor
// (length, variety), can-sync only refuses an empty passphrase; both
// before any network or KDF work, as usage errors, without quoting it.
func TestPassphraseRefused(t *testing.T) {
	empty := passFile(t, "\n", 0o600)
	for _, tc := range []struct {
		pass string // in the environment, unless empty
		args []string
		want string
	}{
		{"tiny", nil, "too weak: 4 characters, want at least 12"},
		{"abababababababab", nil, "only 2 distinct characters"},
		{"", []string{"--passphrase-file", empty}, "the passphrase is empty"},
		{"", []string{"--profile", "can-sync", "--passphrase-file", empty}, "the passphrase is empty"},
	} {
		vars := map[string]string{}
		if tc.pass != "" {
			vars[passphraseEnv] = tc.pass
		}
		for _, cmd := range []string{"slots", "join"} {
			relay, requests := tripwire(t)
			args := append([]string{cmd, "--relay", relay}, tc.args...)
			code, stdout, stderr := runCLI(t, vars, args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%q with %q: exit %d %q, want exit 2 and %q", args, tc.pass, code, stderr, tc.want)
			}
			if strings.Contains(stderr, "deriving keys") || requests.Load() != 0 {
				t.Errorf("%q: work was done before the passphrase was refused", args)
			}
			if tc.pass != "" && strings.Contains(stdout+stderr, tc.pass) {
				t.Errorf("%q: the refused passphrase was printed: %q", args, stderr)
			}
			assertCleanError(t, stderr)
		}
	}
	// can-sync takes any non-empty passphrase, as can-sync does.
	code, _, stderr := runCLI(t, map[string]string{passphraseEnv: "tiny"}, "slots", "--profile", "can-sync", "--keys-only")
	if code != 0 {
		t.Errorf("can-sync refused a short passphrase: exit %d %q", code, stderr)
	}
}

func TestCheckPassphraseMatchesLibrary(t *testing.T) {
	for _, p := range []string{"", "short", "aaaaaaaaaaaaaaaaaaaa", horsePassphrase} {
		lib := slotdiscovery.CheckPassphrase([]byte(p))
		ours := checkPassphrase(profileDefault, []byte(p))
		if (lib == nil) != (ours == nil) {
			t.Errorf("%q: library %v, command %v", p, lib, ours)
		}
	}
}

func assertNoSecret(t *testing.T, output string) {
	t.Helper()
	if strings.Contains(output, secretPhrase) {
		t.Errorf("the passphrase appears in the output:\n%s", output)
	}
}
