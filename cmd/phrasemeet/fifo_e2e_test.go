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

// mkfifo makes a named pipe nobody writes to: opening it to read blocks
// until a writer comes, which never happens here.
func mkfifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return path
}

// exitCode is the exit code in a Proc's Wait error.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("waiting: %v", err)
	return -1
}

// TestProcessesRefuseFIFO: a named pipe given where a secret file goes
// (--passphrase-file, --secret-file) blocked the command forever in open,
// deaf to SIGINT and SIGTERM. Each command now refuses anything but a
// regular file at once, in one line that names the file and what it is.
// keygen --out never overwrites, a FIFO included.
func TestProcessesRefuseFIFO(t *testing.T) {
	fifo := mkfifo(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"join", "--passphrase-file", fifo}, 1, "passphrase file " + fifo + " is a named pipe (FIFO), not a regular file"},
		{[]string{"join", "--profile", "can-sync", "--passphrase-file", fifo}, 1, "is a named pipe (FIFO), not a regular file"},
		{[]string{"slots", "--passphrase-file", fifo}, 1, "is a named pipe (FIFO), not a regular file"},
		{[]string{"publish", "--secret-file", fifo, "--txt", "a=b"}, 1, fifo + " is a named pipe (FIFO), not a regular file"},
		{[]string{"keygen", "--out", fifo}, 1, "file exists"},
	} {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			p := startProc(t, nil, tc.args...)
			code := exitCode(t, p.Wait(stopTimeout))
			stderr := p.Text(proctest.Stderr)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
			}
			assertCleanError(t, stderr)
		})
	}
}

// TestProcessesJoinRefusesEmptyAddr: --addr "" (or blanks) announced an
// empty address; it is a usage error.
func TestProcessesJoinRefusesEmptyAddr(t *testing.T) {
	for _, addr := range []string{"", "  \t"} {
		p := startProc(t, []string{passphraseEnv + "=" + secretPhrase}, "join", "--addr", "/ip4/192.0.2.1/tcp/1", "--addr", addr)
		code := exitCode(t, p.Wait(stopTimeout))
		stderr := p.Text(proctest.Stderr)
		if code != 2 || !strings.Contains(stderr, "--addr") {
			t.Errorf("join --addr %q: exit %d, stderr %q; want exit 2 and a word on --addr", addr, code, stderr)
		}
		assertCleanError(t, stderr)
	}
}
