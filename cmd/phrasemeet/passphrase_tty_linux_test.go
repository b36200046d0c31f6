package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/phrasemeet/discovery/internal/proctest"
)

// These tests give the real binary a pseudo-terminal as standard input,
// as a user at a terminal does, to check the prompt: it reads without
// echo and puts the terminal back as it found it. (internal/passphrase
// tests the prompt itself the same way, in process.)

// startOnTTY starts the binary with tty as standard input and no
// passphrase in the environment.
func startOnTTY(t *testing.T, tty *os.File, args ...string) *proctest.Proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "PHRASEMEET_RELAYS="+deadRelay, bootstrapEnv+"="+deadBootstrap, passphraseEnv+"=")
	cmd.Stdin = tty
	return proctest.Start(t, args[0], cmd)
}

// waitEchoOff waits until the process has turned echo off: it is reading
// the passphrase, and what is typed now is not shown.
func waitEchoOff(t *testing.T, tty *os.File, p *proctest.Proc) {
	t.Helper()
	waitFor(t, "echo off", func() bool { return !proctest.Echo(t, tty) })
	// The prompt was written before echo went off, but the pipe's reader
	// may not have collected it yet: wait for it rather than race it.
	waitFor(t, "the prompt on stderr", func() bool { return strings.Contains(p.Text(proctest.Stderr), "passphrase: ") })
}

func TestProcessesPassphrasePrompt(t *testing.T) {
	t.Parallel()
	master, tty := proctest.OpenPTY(t)
	// OpenPTY has checked that the terminal echoes, and that Drain sees
	// the echo.
	p := startOnTTY(t, tty, "slots", "--profile", "can-sync", "--keys-only")
	waitEchoOff(t, tty, p)
	if _, err := master.WriteString(horsePassphrase + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(stopTimeout); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Output())
	}
	if keys := keysOf(t, p.Text(proctest.Stdout)); keys[0] != horseSlot0 {
		t.Errorf("slot 0 %s, want %s", keys[0], horseSlot0)
	}
	if !proctest.Echo(t, tty) {
		t.Error("echo was left off")
	}
	// Nothing typed came back on the terminal.
	if echoed := proctest.Drain(t, master); bytes.Contains(echoed, []byte(horsePassphrase)) {
		t.Errorf("the terminal echoed the passphrase: %q", echoed)
	}
	if strings.Contains(p.Output(), horsePassphrase) {
		t.Error("the passphrase was printed")
	}
}

// TestProcessesPassphrasePromptInterrupted: Ctrl-C at the prompt ends the
// command with "interrupted" and gives the terminal its echo back.
func TestProcessesPassphrasePromptInterrupted(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"join", "--relay", deadRelay}, {"slots", "--keys-only"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			_, tty := proctest.OpenPTY(t)
			p := startOnTTY(t, tty, args...)
			waitEchoOff(t, tty, p)
			_, err := p.Stop(syscall.SIGINT, stopTimeout)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(p.Text(proctest.Stderr), "phrasemeet "+args[0]+": interrupted") {
				t.Errorf("after SIGINT at the prompt: %v %q", err, p.Text(proctest.Stderr))
			}
			if !proctest.Echo(t, tty) {
				t.Error("echo was left off")
			}
		})
	}
}
