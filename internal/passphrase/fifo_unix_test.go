//go:build unix

package passphrase

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReadRefusesFIFO: a named pipe nobody writes to, given as the
// passphrase file, blocked Read forever in an open no signal interrupts.
// It is refused at once, with an error that says what the path is.
func TestReadRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Read(context.Background(), Source{File: fifo})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		// Release the blocked open, so the test ends.
		if w, werr := os.OpenFile(fifo, os.O_WRONLY, 0); werr == nil {
			w.Close()
		}
		<-done
		t.Fatal("Read blocked on a FIFO")
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != fifo || !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Read of a FIFO: %v, want a *FileError for it, ErrNotRegular", err)
	}
	if want := "passphrase file " + fifo + " is a named pipe (FIFO), not a regular file: use a file of mode 0600, or $" + EnvVar; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}
