// Package proctest runs real processes in end-to-end tests: it starts one,
// collects its standard output and standard error, waits for a line
// matching a regular expression, types into its standard input, waits for
// it to exit, and kills it when the test ends. Main builds the binaries
// the tests run, and on Linux OpenPTY gives a process (or a prompt) a
// real terminal. It is imported by tests only.
//
// A Proc's methods fail the test (t.Fatal) when the process does not do
// what is waited for in time, so they are called from the test's own
// goroutine.
package proctest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Stream names one of a process's outputs.
type Stream int

// The outputs a Proc collects.
const (
	Stdout Stream = iota
	Stderr
)

// Proc is a running process started by Start.
type Proc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser // nil when the caller gave cmd a Stdin

	mu      sync.Mutex
	out     [2][]byte      // what the process wrote, by Stream
	ends    [2][]time.Time // when each line of out ended (its newline arrived)
	changed chan struct{}  // closed and replaced when output arrives

	exited   chan struct{} // closed once the process exited and all its output is in
	err      error         // its exit error, once exited is closed
	exitedAt time.Time     // when, once exited is closed
}

// Start starts cmd, which the caller has set up (path, arguments,
// environment, and Stdin if it is not to be a pipe for Say), and collects
// its standard output and error. name stands for the process in failure
// messages. If cmd.Stdin is nil, a pipe is connected that Say writes to
// and CloseStdin closes. The process is killed when the test ends.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{t: t, name: name, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	var err error
	if cmd.Stdin == nil {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go p.collect(&readers, outPipe, Stdout)
	go p.collect(&readers, errPipe, Stderr)
	go func() {
		readers.Wait() // Wait closes the pipes: it must follow their last read
		p.err = cmd.Wait()
		p.exitedAt = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// collect appends what r yields to the stream's output until r ends.
func (p *Proc) collect(readers *sync.WaitGroup, r io.Reader, s Stream) {
	defer readers.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			now := time.Now()
			p.mu.Lock()
			for range bytes.Count(buf[:n], []byte{'\n'}) {
				p.ends[s] = append(p.ends[s], now)
			}
			p.out[s] = append(p.out[s], buf[:n]...)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *Proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Text returns what the process has written to s so far, an unfinished
// last line (a prompt) included.
func (p *Proc) Text(s Stream) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.out[s])
}

// Lines returns the lines the process has written to s so far, without
// their line ends. A last line without a newline counts once the process
// has exited.
func (p *Proc) Lines(s Stream) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lines(s, p.hasExited())
}

func (p *Proc) lines(s Stream, ended bool) []string {
	lines := strings.Split(string(p.out[s]), "\n")
	if tail := lines[len(lines)-1]; tail == "" || !ended {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// LineTimes returns when each line of Lines(s) arrived (for a last line
// without a newline, when the process ended).
func (p *Proc) LineTimes(s Stream) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.lines(s, p.hasExited()))
	out := slices.Clone(p.ends[s])
	for len(out) < n {
		out = append(out, p.exitedAt)
	}
	return out[:n]
}

// WaitLine waits for a line of s matching re, the first since the process
// started, and returns its submatches. It fails the test if the process
// exits without printing one or timeout passes.
func (p *Proc) WaitLine(s Stream, re *regexp.Regexp, timeout time.Duration) []string {
	p.t.Helper()
	m, _ := p.WaitLineAt(s, re, timeout)
	return m
}

// WaitLineAt is WaitLine that also returns when the line arrived: when
// this process read its newline (or, for a last line without one, when
// the process ended). Measurements use it: the moment a line was printed
// does not depend on when the test got round to waiting for it.
func (p *Proc) WaitLineAt(s Stream, re *regexp.Regexp, timeout time.Duration) ([]string, time.Time) {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ended := p.hasExited() // then every line is in
		lines, ends, changed := p.lines(s, ended), p.ends[s], p.changed
		p.mu.Unlock()
		for i, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				if i < len(ends) {
					return m, ends[i]
				}
				return m, p.exitedAt
			}
		}
		if ended {
			p.t.Fatalf("%s exited (%v) before printing %q\n%s", p.name, p.err, re, p.Output())
		}
		select {
		case <-changed:
		case <-p.exited:
		case <-deadline.C:
			p.t.Fatalf("%s did not print %q within %v\n%s", p.name, re, timeout, p.Output())
		}
	}
}

// Output returns both outputs so far, labelled, for a failure message.
func (p *Proc) Output() string {
	return "stdout:\n" + strings.TrimSuffix(p.Text(Stdout), "\n") + "\nstderr:\n" + strings.TrimSuffix(p.Text(Stderr), "\n")
}

// Say types line and a newline into the process's standard input.
func (p *Proc) Say(line string) {
	p.t.Helper()
	if p.stdin == nil {
		p.t.Fatalf("%s: Say needs the standard input pipe, and Start was given a Stdin", p.name)
	}
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("typing into %s: %v", p.name, err)
	}
}

// CloseStdin closes the process's standard input: it reads to its end.
func (p *Proc) CloseStdin() {
	p.t.Helper()
	if p.stdin == nil {
		p.t.Fatalf("%s: CloseStdin needs the standard input pipe, and Start was given a Stdin", p.name)
	}
	p.stdin.Close()
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling %s: %v", p.name, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil, or an *exec.ExitError).
func (p *Proc) Wait(timeout time.Duration) error {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v\n%s", p.name, timeout, p.Output())
	}
	return nil
}

// Stop sends sig and waits up to timeout for the exit; it returns how long
// the process took and its exit error.
func (p *Proc) Stop(sig os.Signal, timeout time.Duration) (time.Duration, error) {
	p.t.Helper()
	start := time.Now()
	p.Signal(sig)
	select {
	case <-p.exited:
		return time.Since(start), p.err
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v of %v\n%s", p.name, timeout, sig, p.Output())
	}
	return 0, nil
}
