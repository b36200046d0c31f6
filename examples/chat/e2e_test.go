package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end test runs what a user runs: a `phrasemeet relay` process
// on loopback and three chat processes typing into pipes.

var chatBinary, phrasemeetBinary string

// e2eTimeout bounds every wait of a process; generous for small shared
// machines.
const e2eTimeout = 60 * time.Second

const e2ePassphrase = "end to end chat passphrase"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chat-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	chatBinary = filepath.Join(dir, "chat")
	phrasemeetBinary = filepath.Join(dir, "phrasemeet")
	for _, b := range []struct{ out, pkg string }{{chatBinary, "."}, {phrasemeetBinary, "../../cmd/phrasemeet"}} {
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running process whose output lines tests wait for.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	stdout  []string
	stderr  []string
	changed chan struct{}
	exited  chan struct{}
	err     error
}

// startProc starts a binary with the passphrase in its environment and a
// dead relay as the fallback, so nothing can reach a public relay. It is
// killed when the test ends.
func startProc(t *testing.T, name, binary string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "PHRASEMEET_RELAYS=http://127.0.0.1:1", passphraseEnv+"="+e2ePassphrase)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, stdin: stdin, changed: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	read := func(r io.Reader, lines *[]string) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			*lines = append(*lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, r)
	}
	readers.Add(2)
	go read(outPipe, &p.stdout)
	go read(errPipe, &p.stderr)
	go func() {
		readers.Wait()
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// wait returns the submatches of the first line of stdout (or stderr)
// matching re, failing the test if the process exits first or the
// timeout passes.
func (p *proc) wait(stderr bool, re *regexp.Regexp) []string {
	p.t.Helper()
	deadline := time.After(e2eTimeout)
	for {
		p.mu.Lock()
		lines, changed := p.stdout, p.changed
		if stderr {
			lines = p.stderr
		}
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.exited:
			select {
			case <-changed: // lines read just before the exit
				continue
			default:
			}
			p.t.Fatalf("%s exited (%v) before printing %q\n%s", p.name, p.err, re, p.output())
		case <-deadline:
			p.t.Fatalf("%s did not print %q within %v\n%s", p.name, re, e2eTimeout, p.output())
		}
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "stdout:\n" + strings.Join(p.stdout, "\n") + "\nstderr:\n" + strings.Join(p.stderr, "\n")
}

func (p *proc) say(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("typing into %s: %v", p.name, err)
	}
}

// exit waits for the process to end and returns its exit error.
func (p *proc) exit() error {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(e2eTimeout):
		p.t.Fatalf("%s did not exit within %v\n%s", p.name, e2eTimeout, p.output())
	}
	return nil
}

// TestProcessesChat: three chat processes and a relay process on
// loopback. The chats find each other through the relay, a line typed in
// one appears in the other two, and a chat that quits (/quit), crashes
// (SIGKILL) or reaches the end of its input is announced as gone.
func TestProcessesChat(t *testing.T) {
	relay := startProc(t, "relay", phrasemeetBinary, "relay", "--listen", "127.0.0.1:0",
		"--write-rate", "0", "--read-rate", "0", "--log-level", "warn")
	url := relay.wait(false, regexp.MustCompile(`^relay serving (http://127\.0\.0\.1:\d+) `))[1]

	names := []string{"alice", "bob", "carol"}
	chats := make(map[string]*proc)
	ids := make(map[string]string)
	for _, n := range names {
		chats[n] = startProc(t, n, chatBinary, "--relay", url, "--nick", n,
			"--listen", "/ip4/127.0.0.1/tcp/0", "--loopback", "--test-fast")
	}
	t.Cleanup(func() {
		if t.Failed() { // one process's output rarely explains a failure
			for _, n := range names {
				t.Logf("%s's output:\n%s", n, chats[n].output())
			}
		}
	})
	for _, n := range names {
		ids[n] = chats[n].wait(false, regexp.MustCompile(`^\* you are `+n+` \((\w+)\)`))[1]
		chats[n].wait(true, regexp.MustCompile(`^-- announced in slot \d+$`))
	}
	for _, a := range names {
		for _, b := range names {
			if a != b {
				chats[a].wait(false, regexp.MustCompile(`^\* `+b+` (joined|is here) \(`+ids[b]+`\)$`))
				chats[a].wait(true, regexp.MustCompile(`^-- found …`+ids[b][len(ids[b])-6:]+` via slots: \d peers? in `))
			}
		}
	}

	chats["alice"].say("hello from alice")
	for _, n := range []string{"bob", "carol"} {
		chats[n].wait(false, regexp.MustCompile(`^<alice> hello from alice$`))
	}

	chats["bob"].say("/quit")
	if err := chats["bob"].exit(); err != nil {
		t.Fatalf("bob after /quit: %v\n%s", err, chats["bob"].output())
	}
	for _, n := range []string{"alice", "carol"} {
		chats[n].wait(false, regexp.MustCompile(`^\* bob left$`))
	}

	chats["carol"].cmd.Process.Signal(syscall.SIGKILL)
	chats["carol"].exit()
	chats["alice"].wait(false, regexp.MustCompile(`^\* carol left \(connection closed\)$`))

	chats["alice"].stdin.Close()
	if err := chats["alice"].exit(); err != nil {
		t.Fatalf("alice after the end of her input: %v\n%s", err, chats["alice"].output())
	}
	for _, n := range names {
		if out := chats[n].output(); strings.Contains(out, e2ePassphrase) {
			t.Errorf("%s printed the passphrase:\n%s", n, out)
		}
	}
}
