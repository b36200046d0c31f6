//go:build unix

package pkarrclient

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadSecretKeyRefusesFIFO: a named pipe nobody writes to blocked
// LoadSecretKey forever in its open, before its own regular-file check
// could run. It is refused at once.
func TestLoadSecretKeyRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := LoadSecretKey(fifo)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		if w, werr := os.OpenFile(fifo, os.O_WRONLY, 0); werr == nil {
			w.Close()
		}
		<-done
		t.Fatal("LoadSecretKey blocked on a FIFO")
	}
	if !errors.Is(err, ErrInvalidSecretKey) || !strings.Contains(err.Error(), fifo+" is a named pipe (FIFO), not a regular file") {
		t.Fatalf("LoadSecretKey(FIFO): %v, want ErrInvalidSecretKey naming it a named pipe", err)
	}
}
