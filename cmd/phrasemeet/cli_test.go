package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// oneDashFlag matches a flag listed the way the flag package lists it,
// "  -name", which users of gh, restic and age do not type.
var oneDashFlag = regexp.MustCompile(`(?m)^\s+-[^-\s]`)

// TestHelpGoesToStdout: asking for help is not an error, so the text goes
// to standard output (where `| less` finds it) and the exit status is 0;
// every flag is listed with the two dashes users type.
func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"help", "help"}, {"help", "-h"}, {"help", "--help"}} {
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
			if strings.Contains(stdout, "flags:") && !strings.Contains(stdout, "\n  --") {
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

// stamped is the build information of a binary built from a checkout with
// uncommitted changes, as `go build` records it.
var stamped = &debug.BuildInfo{
	GoVersion: "go1.26.8",
	Path:      "github.com/phrasemeet/discovery/cmd/phrasemeet",
	Main:      debug.Module{Path: "github.com/phrasemeet/discovery", Version: "v0.4.1-0.20261207151849-58d8adc1e2f3+dirty"},
	Settings: []debug.BuildSetting{
		{Key: "-buildmode", Value: "exe"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "58d8adc1e2f3a4b5c6d7e8f90123456789abcdef"},
		{Key: "vcs.time", Value: "2026-12-07T15:18:49Z"},
		{Key: "vcs.modified", Value: "true"},
	},
}

// TestVersion: `version` and `--version` print one line on stdout with the
// module version and the VCS revision the binary was built from, and say
// so when the build recorded neither.
func TestVersion(t *testing.T) {
	noVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/phrasemeet/discovery", Version: "(devel)"}}
	clean := *stamped
	clean.Settings = append([]debug.BuildSetting(nil), stamped.Settings...)
	clean.Settings[len(clean.Settings)-1].Value = "false"
	for _, tc := range []struct {
		name   string
		info   *debug.BuildInfo
		ok     bool
		want   []string
		reject []string
	}{
		{"stamped", stamped, true, []string{
			"phrasemeet v0.4.1-0.20261207151849-58d8adc1e2f3+dirty",
			"revision 58d8adc1e2f3a4b5c6d7e8f90123456789abcdef",
			"modified", "2026-12-07T15:18:49Z", "go1.26.8",
		}, nil},
		{"clean", &clean, true, []string{"revision 58d8adc1e2f3a4b5c6d7e8f90123456789abcdef"}, []string{"modified"}},
		{"no VCS", noVCS, true, []string{"phrasemeet (devel)", "revision unknown", "go1.26.8"}, []string{"modified"}},
		{"no build info", nil, false, []string{"phrasemeet", "version unknown"}, nil},
	} {
		for _, args := range [][]string{{"version"}, {"--version"}} {
			e, out, errb := testEnv(t, nil, nil)
			e.buildInfo = func() (*debug.BuildInfo, bool) { return tc.info, tc.ok }
			code := run(context.Background(), e, args)
			stdout := out.String()
			if code != 0 || errb.Len() != 0 || strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
				t.Errorf("%s: phrasemeet %q: exit %d, stdout %q, stderr %q; want exit 0 and one line on stdout", tc.name, args, code, stdout, errb)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("%s: phrasemeet %q printed %q, lacking %q", tc.name, args, stdout, w)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(stdout, r) {
					t.Errorf("%s: phrasemeet %q printed %q, which should not say %q", tc.name, args, stdout, r)
				}
			}
		}
	}
}

// TestVersionCommandLine: version takes no arguments, and has its help.
func TestVersionCommandLine(t *testing.T) {
	for _, args := range [][]string{{"version", "extra"}, {"--version", "extra"}} {
		if code, _, stderr := runCLI(t, nil, args...); code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
			t.Errorf("phrasemeet %q: exit %d, stderr %q; want exit 2", args, code, stderr)
		}
	}
	if code, stdout, stderr := runCLI(t, nil, "help", "version"); code != 0 || stderr != "" || !strings.Contains(stdout, "usage: phrasemeet version") {
		t.Errorf("phrasemeet help version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, stdout, _ := runCLI(t, nil, "help"); !strings.Contains(stdout, "version") {
		t.Errorf("phrasemeet help does not list version:\n%s", stdout)
	}
}

// TestUnknownFlag: a flag the command does not have is a wrong command
// line (exit 2) told in one line on stderr that names the flag the way
// help lists it and points to the command's -h, not the whole usage.
func TestUnknownFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"keygen", "--bogus"}, []string{"phrasemeet keygen: unknown flag --bogus", "phrasemeet keygen -h"}},
		{[]string{"resolve", "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no", "-x=1"}, []string{"unknown flag -x", "phrasemeet resolve -h"}},
		{[]string{"keygen", "-bogus"}, []string{"unknown flag --bogus", "phrasemeet keygen -h"}},
		{[]string{"relay", "--listen", "127.0.0.1:0", "--circut-listen", "/ip4/127.0.0.1/tcp/0"}, []string{"unknown flag --circut-listen", "phrasemeet relay -h"}},
		{[]string{"version", "--short"}, []string{"unknown flag --short", "phrasemeet version -h"}},
		{[]string{"--bogus"}, []string{"phrasemeet: unknown flag --bogus", "phrasemeet -h"}},
		{[]string{"-v"}, []string{"unknown flag -v", "phrasemeet -h"}},
		// The name comes from the user: shown quoted, on the same line.
		{[]string{"keygen", "--a\nb"}, []string{`unknown flag "--a\nb"`}},
		// Other mistakes the flag package finds read the same way.
		{[]string{"keygen", "--out"}, []string{"flag --out needs a value", "phrasemeet keygen -h"}},
		{[]string{"resolve", "--most-recent=maybe", "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no"}, []string{`invalid value "maybe" for --most-recent`, "phrasemeet resolve -h"}},
		{[]string{"dht-node", "--capacity", "lots"}, []string{`invalid value "lots" for --capacity`, "phrasemeet dht-node -h"}},
	} {
		code, stdout, stderr := runCLI(t, nil, tc.args...)
		if code != 2 || stdout != "" {
			t.Errorf("phrasemeet %q: exit %d, stdout %q; want exit 2 and nothing on stdout", tc.args, code, stdout)
		}
		if lines := strings.Count(stderr, "\n"); lines < 1 || lines > 3 || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("phrasemeet %q: stderr has %d lines, want 1 to 3: %q", tc.args, lines, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("phrasemeet %q: stderr %q lacks %q", tc.args, stderr, w)
			}
		}
		if strings.Contains(stderr, "usage:") || strings.Contains(stderr, "flag provided") {
			t.Errorf("phrasemeet %q: stderr %q is the flag package's text, not ours", tc.args, stderr)
		}
	}
}

// FuzzParseFlags: whatever the command line, parsing returns (never
// panics), a mistake is a usage error told on one line, and nothing is
// printed unless help was asked for.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{
		"--bogus", "-x=1", "--out", "--n=abc", "--b=maybe", "KEY\x00--list\x00a,b\x00--\x00--list",
		"---x", "-=x", "--a\nb", "-h", "--help", "--out=\x00-b", "--list=\x00--list", "\x00\x00-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var out strings.Builder
		fs := newFlagSet("x", "[flags]", &out)
		fs.String("out", "", "")
		fs.Bool("b", false, "")
		fs.Int("n", 0, "")
		var l listFlag
		fs.Var(&l, "list", "")
		_, err := parseFlags(fs, strings.Split(line, "\x00"))
		switch {
		case err == nil:
		case errors.Is(err, flag.ErrHelp):
			return
		case !errors.Is(err, errUsage):
			t.Fatalf("%q: %v is not a usage error", line, err)
		case strings.ContainsAny(err.Error(), "\n\r"):
			t.Fatalf("%q: error %q is not one line", line, err)
		case !strings.Contains(err.Error(), "phrasemeet x -h"):
			t.Fatalf("%q: error %q does not point to -h", line, err)
		}
		if out.Len() != 0 {
			t.Fatalf("%q: printed %q without being asked for help", line, out.String())
		}
	})
}

// refusingFlag is a flag whose Set fails with a message over several
// lines, as a parser's error quoting its input may.
type refusingFlag struct{}

func (refusingFlag) String() string { return "" }
func (refusingFlag) Set(v string) error {
	return errors.New("no\r\nnot " + v + "\x1b[2J")
}

// TestFlagErrorOneLine: whatever a flag's Set method says, the error is
// one line on the terminal, with no control characters.
func TestFlagErrorOneLine(t *testing.T) {
	fs := newFlagSet("x", "", &strings.Builder{})
	fs.Var(refusingFlag{}, "size", "")
	_, err := parseFlags(fs, []string{"--size", "a\nb"})
	if err == nil || strings.IndexFunc(err.Error(), func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 ||
		!strings.Contains(err.Error(), "--size") {
		t.Fatalf("error %q: want one line naming --size without control characters", err)
	}
}

// helpFlag is a flag's line in help ("  --name PLACEHOLDER") and the usage
// text on the lines after it.
var helpFlag = regexp.MustCompile(`(?m)^  --(\S+)(?: (\S+))?\n((?:    \t.*\n)*)`)

// TestHelpNamesListFlagValues: a flag that takes a list (repeatable, or
// comma-separated) shows what goes in it, as in `--relay URL`, not the
// flag package's generic "value"; and no flag of any command shows
// "value".
func TestHelpNamesListFlagValues(t *testing.T) {
	want := map[string]map[string]string{
		"resolve": {"relay": "URL", "bootstrap": "HOST:PORT"},
		"publish": {"relay": "URL", "txt": "NAME=VALUE", "record": "RR"},
		"relay":   {"circuit-listen": "MULTIADDR", "public-cidr": "CIDR", "trusted-proxy": "CIDR", "bootstrap": "HOST:PORT"},
		"join":    {"relay": "URL", "addr": "ADDR"},
		"slots":   {"relay": "URL"},
	}
	for _, c := range commands() {
		_, stdout, _ := runCLI(t, nil, c.name, "--help")
		seen := map[string]string{}
		for _, m := range helpFlag.FindAllStringSubmatch(stdout, -1) {
			name, placeholder, usage := m[1], m[2], m[3]
			seen[name] = placeholder
			switch {
			case placeholder == "value":
				t.Errorf("phrasemeet %s --help: --%s shows the generic placeholder \"value\"", c.name, name)
			case strings.Contains(usage, "repeatable") && (placeholder == "" || strings.ToUpper(placeholder) != placeholder):
				t.Errorf("phrasemeet %s --help: list flag --%s shows %q, want a placeholder naming its values (e.g. URL)", c.name, name, placeholder)
			}
		}
		for name, p := range want[c.name] {
			if got, ok := seen[name]; !ok || got != p {
				t.Errorf("phrasemeet %s --help: --%s shows %q, want --%s %s", c.name, name, got, name, p)
			}
		}
	}
}

// TestResolveHelpDocumentsExitCodes: the exit statuses a script tests for
// are in resolve's help, with the values the code uses.
func TestResolveHelpDocumentsExitCodes(t *testing.T) {
	_, stdout, _ := runCLI(t, nil, "help", "resolve")
	for _, want := range []string{
		"Exit status:",
		fmt.Sprintf("%d not found", exitNotFound),
		fmt.Sprintf("%d no relay answered", exitNoAnswer),
		"2 a wrong command line",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("phrasemeet help resolve lacks %q:\n%s", want, stdout)
		}
	}
}

// FuzzResolveJSONTXT: whatever bytes a TXT record holds, resolve --json's
// "txt" gives them back as published (character-strings joined), and the
// object encodes.
func FuzzResolveJSONTXT(f *testing.F) {
	for _, s := range []string{"", "world", `a "quoted" \ value`, "\x00\xff\n", strings.Repeat("x", 300), "é\\123"} {
		f.Add(s)
	}
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value string) {
		p, err := pkarrclient.NewBuilder().TXT("_v", 60, value).Record("@ 60 IN A 192.0.2.1").Sign(sk)
		if err != nil {
			return // too large for a packet
		}
		got := packetJSON(p)
		if len(got.Records) != 2 || got.Records[0].TXT == nil || *got.Records[0].TXT != value || got.Records[1].TXT != nil {
			t.Fatalf("TXT %q: records %+v", value, got.Records)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Fatal(err)
		}
	})
}

// TestJSONFieldsDocumented: every field resolve --json and publish --json
// print is named in the command's help, so the documentation cannot fall
// behind the code.
func TestJSONFieldsDocumented(t *testing.T) {
	for cmd, types := range map[string][]any{
		"resolve": {jsonPacket{}, jsonRecord{}},
		"publish": {jsonPublish{}, jsonOutcome{}},
	} {
		_, help, _ := runCLI(t, nil, "help", cmd)
		for _, v := range types {
			rt := reflect.TypeOf(v)
			for i := range rt.NumField() {
				name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
				if !strings.Contains(help, `"`+name+`"`) {
					t.Errorf("phrasemeet help %s does not name the JSON field %q", cmd, name)
				}
			}
		}
	}
	if _, help, _ := runCLI(t, nil, "help", "keygen"); !strings.Contains(help, `{"key"`) || !strings.Contains(help, `"file"}`) {
		t.Errorf("phrasemeet help keygen does not name its JSON fields:\n%s", help)
	}
}
