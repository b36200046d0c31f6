package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/passphrase"
	"github.com/phrasemeet/discovery/internal/proctest"
)

// The end-to-end test runs what a user runs: a `phrasemeet relay` process
// on loopback and three chat processes typing into pipes.

var chatBinary, phrasemeetBinary string

// e2eTimeout bounds every wait of a process; generous for small shared
// machines.
const e2eTimeout = 60 * time.Second

const e2ePassphrase = "end to end chat passphrase"

func TestMain(m *testing.M) {
	proctest.Main(m, proctest.Binary{Name: "chat", Pkg: ".", Path: &chatBinary},
		proctest.Binary{Name: "phrasemeet", Pkg: "../../cmd/phrasemeet", Path: &phrasemeetBinary})
}

// startProc starts a binary with the passphrase in its environment and a
// dead relay as the fallback, so nothing can reach a public relay. It is
// killed when the test ends.
func startProc(t *testing.T, name, binary string, args ...string) *proctest.Proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "PHRASEMEET_RELAYS=http://127.0.0.1:1", passphrase.EnvVar+"="+e2ePassphrase)
	return proctest.Start(t, name, cmd)
}

// TestProcessesChat: three chat processes and a relay process on
// loopback. The chats find each other through the relay, a line typed in
// one appears in the other two, and a chat that quits (/quit), crashes
// (SIGKILL) or reaches the end of its input is announced as gone.
func TestProcessesChat(t *testing.T) {
	relay := startProc(t, "relay", phrasemeetBinary, "relay", "--listen", "127.0.0.1:0",
		"--write-rate", "0", "--read-rate", "0", "--log-level", "warn")
	url := relay.WaitLine(proctest.Stdout, regexp.MustCompile(`^relay serving (http://127\.0\.0\.1:\d+) `), e2eTimeout)[1]

	names := []string{"alice", "bob", "carol"}
	chats := make(map[string]*proctest.Proc)
	ids := make(map[string]string)
	for _, n := range names {
		chats[n] = startProc(t, n, chatBinary, "--relay", url, "--nick", n,
			"--listen", "/ip4/127.0.0.1/tcp/0", "--loopback", "--test-fast")
	}
	t.Cleanup(func() {
		if t.Failed() { // one process's output rarely explains a failure
			for _, n := range names {
				t.Logf("%s's output:\n%s", n, chats[n].Output())
			}
		}
	})
	for _, n := range names {
		ids[n] = chats[n].WaitLine(proctest.Stdout, regexp.MustCompile(`^\* you are `+n+` \((\w+)\)`), e2eTimeout)[1]
		chats[n].WaitLine(proctest.Stderr, regexp.MustCompile(`^-- announced in slot \d+$`), e2eTimeout)
	}
	for _, a := range names {
		for _, b := range names {
			if a != b {
				// Status lines name a member by nick once it is known.
				chats[a].WaitLine(proctest.Stdout, regexp.MustCompile(`^\* `+b+` (joined|is here) \(`+ids[b]+`\)$`), e2eTimeout)
				chats[a].WaitLine(proctest.Stderr, regexp.MustCompile(`^-- found (?:`+b+`|…`+ids[b][len(ids[b])-6:]+`) via slots: \d peers? in `), e2eTimeout)
			}
		}
	}

	chats["alice"].Say("hello from alice")
	for _, n := range []string{"bob", "carol"} {
		chats[n].WaitLine(proctest.Stdout, regexp.MustCompile(`^<alice> hello from alice$`), e2eTimeout)
	}

	chats["bob"].Say("/quit")
	if err := chats["bob"].Wait(e2eTimeout); err != nil {
		t.Fatalf("bob after /quit: %v\n%s", err, chats["bob"].Output())
	}
	for _, n := range []string{"alice", "carol"} {
		chats[n].WaitLine(proctest.Stdout, regexp.MustCompile(`^\* bob left$`), e2eTimeout)
	}

	chats["carol"].Stop(syscall.SIGKILL, e2eTimeout)
	chats["alice"].WaitLine(proctest.Stdout, regexp.MustCompile(`^\* carol left \(connection closed\)$`), e2eTimeout)

	chats["alice"].CloseStdin()
	if err := chats["alice"].Wait(e2eTimeout); err != nil {
		t.Fatalf("alice after the end of her input: %v\n%s", err, chats["alice"].Output())
	}
	for _, n := range names {
		if out := chats[n].Output(); strings.Contains(out, e2ePassphrase) {
			t.Errorf("%s printed the passphrase:\n%s", n, out)
		}
	}
}
