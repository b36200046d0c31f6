package proctest

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// OpenPTY opens a pseudo-terminal pair, for a test that plays a user at a
// terminal: master is the side the test types into and reads the
// terminal's echo from, tty the terminal a process (as its Stdin) or a
// prompt reads. Both are closed when the test ends, master first. It
// skips the test where there are no pseudo-terminals.
//
// The terminal is checked to echo, as a new one does, with a control: a
// line typed on master comes back there, where Drain finds it. So a test
// that later finds no echo of what it typed knows echo was off.
func OpenPTY(t testing.TB) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Skipf("ptsname: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Skipf("opening the terminal: %v", err)
	}
	t.Cleanup(func() {
		// Closing the master hangs the terminal up, which ends a read
		// still blocked on it.
		master.Close()
		tty.Close()
	})
	if !Echo(t, tty) {
		t.Fatal("a new terminal should echo")
	}
	// The line is read off the terminal, so that no program gets it.
	master.WriteString("probe\n")
	buf := make([]byte, 64)
	if n, err := tty.Read(buf); err != nil || string(buf[:n]) != "probe\n" {
		t.Fatalf("terminal read %q %v", buf[:n], err)
	}
	if echoed := Drain(t, master); !bytes.Contains(echoed, []byte("probe")) {
		t.Fatalf("the control was not echoed: %q", echoed)
	}
	return master, tty
}

// Echo reports whether the terminal echoes what is typed: off while a
// program reads a passphrase.
func Echo(t testing.TB, tty *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// Drain returns what the master side holds to read, without blocking:
// what the terminal has echoed or a program has written to it.
func Drain(t testing.TB, master *os.File) []byte {
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
