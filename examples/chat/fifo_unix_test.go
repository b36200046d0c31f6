//go:build unix

package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/phrasemeet/discovery/internal/proctest"
)

// TestProcessRefusesFIFO: the chat reads --passphrase-file through
// internal/passphrase, so a named pipe nobody writes to is refused at once
// (it used to block the process for good, deaf to Ctrl-C), in one line.
func TestProcessRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	p := startProc(t, "chat", chatBinary, "--passphrase-file", fifo, "--relay", "http://127.0.0.1:1")
	err := p.Wait(e2eTimeout)
	var exit *exec.ExitError
	stderr := p.Text(proctest.Stderr)
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr, fifo+" is a named pipe (FIFO), not a regular file") {
		t.Fatalf("chat --passphrase-file FIFO: %v, stderr %q; want exit 1 naming the FIFO", err, stderr)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("error is not one line: %q", stderr)
	}
}
