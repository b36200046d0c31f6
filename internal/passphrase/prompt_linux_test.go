package passphrase

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
)

// These tests prompt on a real pseudo-terminal, as a user at a terminal
// is prompted: the passphrase is read without echo, and the terminal is
// put back as it was found, also when the prompt is interrupted.

// terminal opens a pseudo-terminal that echoes (proctest.OpenPTY checks
// it). When the test ends it hangs the terminal up and waits for every
// read Prompt left blocked on it, before the terminal is closed.
func terminal(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, tty = proctest.OpenPTY(t)
	t.Cleanup(func() {
		master.Close()
		reads.Wait()
	})
	return master, tty
}

type result struct {
	pass []byte
	err  error
}

// startRead runs Read with tty as standard input and no other source, and
// waits until echo is off: the prompt is reading, and what is typed now
// is not shown.
func startRead(t *testing.T, ctx context.Context, tty *os.File, prompt *bytes.Buffer) <-chan result {
	t.Helper()
	done := make(chan result, 1)
	go func() {
		pass, err := Read(ctx, Source{Getenv: func(string) string { return "" }, Stdin: tty, Stderr: prompt})
		done <- result{pass, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for proctest.Echo(t, tty) {
		if time.Now().After(deadline) {
			t.Fatal("echo still on: no prompt is reading")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return done
}

func waitResult(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt did not return")
	}
	return result{}
}

func TestPromptReadsWithoutEcho(t *testing.T) {
	master, tty := terminal(t)
	var prompt bytes.Buffer
	done := startRead(t, context.Background(), tty, &prompt)
	if _, err := master.WriteString(secret + "\n"); err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, done)
	if r.err != nil || string(r.pass) != secret {
		t.Fatalf("read %q, %v", r.pass, r.err)
	}
	if prompt.String() != "passphrase: \n" {
		t.Errorf("prompt %q, want \"passphrase: \" and the newline the terminal did not echo", prompt.String())
	}
	if !proctest.Echo(t, tty) {
		t.Error("echo was left off")
	}
	if echoed := proctest.Drain(t, master); bytes.Contains(echoed, []byte(secret)) {
		t.Errorf("the terminal echoed the passphrase: %q", echoed)
	}
}

// TestPromptInterrupted: the context ending at the prompt, as a SIGINT
// does through signal.NotifyContext, returns ErrInterrupted and gives the
// terminal its echo back.
func TestPromptInterrupted(t *testing.T) {
	_, tty := terminal(t)
	ctx, cancel := context.WithCancel(context.Background())
	var prompt bytes.Buffer
	done := startRead(t, ctx, tty, &prompt)
	cancel()
	r := waitResult(t, done)
	if !errors.Is(r.err, ErrInterrupted) || r.err.Error() != "interrupted" || r.pass != nil {
		t.Fatalf("after the context ended: %q, %v; want ErrInterrupted", r.pass, r.err)
	}
	if prompt.String() != "passphrase: \n" {
		t.Errorf("prompt %q", prompt.String())
	}
	if !proctest.Echo(t, tty) {
		t.Error("echo was left off")
	}
}
