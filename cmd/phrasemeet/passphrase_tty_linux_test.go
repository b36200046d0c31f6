package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests give the real binary a pseudo-terminal as standard input,
// as a user at a terminal does, to check the prompt: it reads without
// echo and puts the terminal back as it found it.

// openPTY opens a pseudo-terminal pair: the master side the test types
// into, the terminal the process reads.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

func echoOn(t *testing.T, tty *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// startOnTTY starts the binary with tty as standard input and no
// passphrase in the environment.
func startOnTTY(t *testing.T, tty *os.File, args ...string) (cmd *exec.Cmd, stdout, stderr *syncBuffer, exited chan error) {
	t.Helper()
	cmd = exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "PHRASEMEET_RELAYS="+deadRelay, bootstrapEnv+"="+deadBootstrap, passphraseEnv+"=")
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		exited <- nil
	})
	return cmd, stdout, stderr, exited
}

// waitEchoOff waits until the process has turned echo off: it is reading
// the passphrase, and what is typed now is not shown.
func waitEchoOff(t *testing.T, tty *os.File, stderr *syncBuffer) {
	t.Helper()
	waitFor(t, "echo off", func() bool { return !echoOn(t, tty) })
	if !strings.Contains(stderr.String(), "passphrase: ") {
		t.Errorf("no prompt on stderr: %q", stderr)
	}
}

func TestProcessesPassphrasePrompt(t *testing.T) {
	t.Parallel()
	master, tty := openPTY(t)
	if !echoOn(t, tty) {
		t.Fatal("a new terminal should echo")
	}
	// The control: with echo on, what is typed comes back on the master
	// side, where drain finds it. (The line is read off the terminal so
	// the process does not get it.)
	master.WriteString("probe\n")
	if line, err := readLine(tty); err != nil || line != "probe\n" {
		t.Fatalf("terminal read %q %v", line, err)
	}
	if echoed := drain(t, master); !bytes.Contains(echoed, []byte("probe")) {
		t.Fatalf("the control was not echoed: %q", echoed)
	}
	_, stdout, stderr, exited := startOnTTY(t, tty, "slots", "--profile", "can-sync", "--keys-only")
	waitEchoOff(t, tty, stderr)
	if _, err := master.WriteString(horsePassphrase + "\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr)
		}
	case <-time.After(stopTimeout):
		t.Fatal("slots did not finish after the passphrase was typed")
	}
	if keys := keysOf(t, stdout.String()); keys[0] != horseSlot0 {
		t.Errorf("slot 0 %s, want %s", keys[0], horseSlot0)
	}
	if !echoOn(t, tty) {
		t.Error("echo was left off")
	}
	// Nothing typed came back on the terminal.
	if echoed := drain(t, master); bytes.Contains(echoed, []byte(horsePassphrase)) {
		t.Errorf("the terminal echoed the passphrase: %q", echoed)
	}
	if strings.Contains(stdout.String()+stderr.String(), horsePassphrase) {
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
			_, tty := openPTY(t)
			cmd, _, stderr, exited := startOnTTY(t, tty, args...)
			waitEchoOff(t, tty, stderr)
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "phrasemeet "+args[0]+": interrupted") {
					t.Errorf("after SIGINT at the prompt: %v %q", err, stderr)
				}
			case <-time.After(stopTimeout):
				t.Fatalf("%s did not stop on SIGINT at the prompt", args[0])
			}
			if !echoOn(t, tty) {
				t.Error("echo was left off")
			}
		})
	}
}

// drain returns what the master side holds to read, without blocking.
func drain(t *testing.T, master *os.File) []byte {
	t.Helper()
	fd := int(master.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			out = append(out, buf[:n]...)
		}
		if err != nil || n <= 0 {
			return out // EAGAIN: nothing more
		}
	}
}

// readLine reads one canonical-mode line from the terminal.
func readLine(tty *os.File) (string, error) {
	buf := make([]byte, 256)
	n, err := tty.Read(buf)
	return string(buf[:n]), err
}
