package netlab

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// inNamespace runs f on a new OS thread in the network namespace at path.
// The goroutine stays locked to the thread and ends without unlocking it,
// so the runtime discards the thread rather than let another goroutine
// run in the namespace; threads the runtime starts meanwhile come from its
// template thread and stay in the test's own namespace.
func inNamespace(path string, f func() error) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening namespace: %w", err)
	}
	defer unix.Close(fd)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("entering namespace %s: %w", path, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// pidsIn lists the processes whose network namespace is the one at path,
// as `ip netns pids` does, never this process itself.
func pidsIn(path string) ([]int, error) {
	var ns unix.Stat_t
	if err := unix.Stat(path, &ns); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue // gone, or a zombie
		}
		if st.Dev == ns.Dev && st.Ino == ns.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killAll kills every process in the namespace at path and waits a while
// for them to leave it, so the namespace is freed when its name is
// deleted. A missing namespace has nothing to kill.
func killAll(path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := pidsIn(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in %s outlived SIGKILL", pids, path)
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL) // one that has just exited is no error
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processExists reports whether a process with this ID runs (or awaits
// its parent's wait).
func processExists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
