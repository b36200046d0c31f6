package proctest

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh here")
	}
	return exec.Command(path, "-c", script)
}

// failure is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does, without failing the test.
type failure struct {
	testing.TB
	msg chan string
}

func (f *failure) Fatalf(format string, args ...any) {
	f.msg <- fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatal runs do against a Proc started on f and returns what it failed
// with, or "" if it did not.
func fatal(t *testing.T, script string, do func(p *Proc)) string {
	f := &failure{TB: t, msg: make(chan string, 1)}
	p := Start(f, "sh", sh(t, script))
	done := make(chan struct{})
	go func() {
		defer close(done)
		do(p)
	}()
	<-done
	select {
	case m := <-f.msg:
		return m
	default:
		return ""
	}
}

func TestSayAndLines(t *testing.T) {
	p := Start(t, "cat", sh(t, "cat"))
	p.Say("hello")
	p.Say("second line")
	if m := p.WaitLine(Stdout, regexp.MustCompile(`^second (\w+)$`), 10*time.Second); m[1] != "line" {
		t.Errorf("submatches %q", m)
	}
	// The first matching line since the start, again.
	if m := p.WaitLine(Stdout, regexp.MustCompile(`^\w+`), time.Second); m[0] != "hello" {
		t.Errorf("first match %q", m)
	}
	p.CloseStdin()
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatalf("cat after the end of its input: %v", err)
	}
	if got := strings.Join(p.Lines(Stdout), "|"); got != "hello|second line" {
		t.Errorf("lines %q", got)
	}
}

func TestUnfinishedLineAndExitStatus(t *testing.T) {
	p := Start(t, "sh", sh(t, `echo out; echo err >&2; printf 'prompt: '; exit 3`))
	p.WaitLine(Stderr, regexp.MustCompile(`^err$`), 10*time.Second)
	var exit *exec.ExitError
	if err := p.Wait(10 * time.Second); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("exit %v, want status 3", err)
	}
	if got := p.Text(Stdout); got != "out\nprompt: " {
		t.Errorf("text %q", got)
	}
	// Once the process is gone, its unfinished last line counts.
	if got := strings.Join(p.Lines(Stdout), "|"); got != "out|prompt: " {
		t.Errorf("lines %q", got)
	}
	if got := p.Output(); got != "stdout:\nout\nprompt: \nstderr:\nerr" {
		t.Errorf("output %q", got)
	}
}

func TestStop(t *testing.T) {
	p := Start(t, "sleep", sh(t, "exec sleep 60"))
	took, err := p.Stop(syscall.SIGTERM, 10*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("after SIGTERM: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestWaitLineFails(t *testing.T) {
	if m := fatal(t, "echo no", func(p *Proc) {
		p.WaitLine(Stdout, regexp.MustCompile(`^yes$`), 10*time.Second)
	}); !strings.Contains(m, `sh exited (<nil>) before printing "^yes$"`) || !strings.Contains(m, "stdout:\nno\n") {
		t.Errorf("a process that exits without the line: %q", m)
	}
	if m := fatal(t, "echo no; exec sleep 60", func(p *Proc) {
		p.WaitLine(Stdout, regexp.MustCompile(`^yes$`), 100*time.Millisecond)
	}); !strings.Contains(m, `sh did not print "^yes$" within 100ms`) {
		t.Errorf("a process that never prints the line: %q", m)
	}
	if m := fatal(t, "exec sleep 60", func(p *Proc) { p.Wait(100 * time.Millisecond) }); !strings.Contains(m, "sh did not exit within 100ms") {
		t.Errorf("a process that does not exit: %q", m)
	}
}

// WaitLineAt tells when each line arrived, not when the test asked: a
// line printed a while before the wait keeps its own time.
func TestWaitLineAt(t *testing.T) {
	p := Start(t, "sh", sh(t, "echo first; sleep 1; echo second; printf third"))
	_, second := p.WaitLineAt(Stdout, regexp.MustCompile(`^second$`), 10*time.Second)
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_, first := p.WaitLineAt(Stdout, regexp.MustCompile(`^first$`), time.Second)
	_, third := p.WaitLineAt(Stdout, regexp.MustCompile(`^third$`), time.Second)
	if gap := second.Sub(first); gap < 900*time.Millisecond {
		t.Errorf("second arrived %v after first; the script slept a second between them", gap)
	}
	if third.Before(second) || time.Since(third) < 100*time.Millisecond {
		t.Errorf("the unfinished last line is dated %v, the second line %v, now %v", third, second, time.Now())
	}
	if got := p.LineTimes(Stdout); len(got) != 3 || !got[0].Equal(first) || !got[1].Equal(second) || !got[2].Equal(third) {
		t.Errorf("LineTimes %v, want %v %v %v", got, first, second, third)
	}
}
