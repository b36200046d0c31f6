//go:build unix

package regularfile

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}

// openWithin runs open in a goroutine and fails the test if it blocks: it
// then releases a blocked open of fifo by opening it to write.
func openWithin(t *testing.T, path, fifo string, between func()) (*os.File, error) {
	t.Helper()
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, _, err := open(path, between)
		done <- result{f, err}
	}()
	select {
	case r := <-done:
		return r.f, r.err
	case <-time.After(20 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatalf("opening %s blocked", path)
	}
	return nil, nil
}

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("words"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, link} {
		f, st, err := Open(p)
		if err != nil {
			t.Fatalf("Open(%s): %v", p, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "words" || st.Size() != 5 || st.Mode().Perm() != 0o600 {
			t.Errorf("Open(%s): read %q, %v, size %d, mode %v", p, b, err, st.Size(), st.Mode())
		}
	}
	if _, _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing): %v, want fs.ErrNotExist", err)
	}
}

// TestOpenRefusesOthers: a FIFO (which blocked forever), a link to one, a
// directory, a device and a socket are refused without blocking, with an
// error naming the path and what it is.
func TestOpenRefusesOthers(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	mkfifo(t, fifo)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []struct{ path, kind string }{
		{fifo, "a named pipe (FIFO)"},
		{link, "a named pipe (FIFO)"},
		{dir, "a directory"},
		{os.DevNull, "a character device"},
		{sock, "a socket"},
	} {
		f, err := openWithin(t, c.path, fifo, nil)
		if f != nil {
			f.Close()
		}
		var nr *NotRegularError
		if !errors.Is(err, ErrNotRegular) || !errors.As(err, &nr) || nr.Path != c.path {
			t.Errorf("Open(%s): %v, want a NotRegularError for it", c.path, err)
			continue
		}
		if want := c.path + " is " + c.kind + ", not a regular file"; err.Error() != want {
			t.Errorf("Open(%s): %q, want %q", c.path, err, want)
		}
	}
}

// TestOpenRefusesSwap: a FIFO swapped in between the check and the open
// neither blocks the open nor passes.
func TestOpenRefusesSwap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("words"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	mkfifo(t, fifo)
	f, err := openWithin(t, path, path, func() {
		if err := os.Rename(fifo, path); err != nil {
			t.Error(err)
		}
	})
	if f != nil {
		f.Close()
	}
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "named pipe") {
		t.Fatalf("Open with a FIFO swapped in: %v, want it refused as a named pipe", err)
	}
}
