package netnstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// reexec runs this test binary again in a new network namespace and
// returns its exit status. As root the namespace is made directly;
// otherwise inside a new user namespace where this user is root, where
// the kernel allows that.
func reexec() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	ns, err := netns()
	if err != nil {
		return 0, err
	}
	attempts := []*syscall.SysProcAttr{{Cloneflags: syscall.CLONE_NEWNET}}
	if os.Geteuid() != 0 {
		attempts = []*syscall.SysProcAttr{{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		}}
	}
	var errs []error
	for _, attr := range attempts {
		cmd := exec.Command(exe, os.Args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), envInside+"="+ns)
		cmd.SysProcAttr = attr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, nil
		case errors.As(err, &exit) && exit.ExitCode() >= 0:
			return exit.ExitCode(), nil
		case errors.As(err, &exit):
			return 1, fmt.Errorf("the tests in the namespace ended by %v", exit) // a signal: report, do not rerun
		}
		errs = append(errs, err) // never started: EPERM and the like
	}
	return 0, errors.Join(errs...)
}

// netns names the network namespace this process runs in.
func netns() (string, error) {
	return os.Readlink("/proc/self/ns/net")
}

// setupLoopback brings lo up with the MULTICAST flag, which a new
// namespace's loopback lacks, so mDNS has an interface to join its group
// on (`ip link set lo up multicast on`, without needing iproute2). It
// touches nothing unless this is a namespace other than the parent's
// holding nothing but lo, as a new one does: were the marker variable to
// leak into a process on the machine's own network, that process would
// skip its multicast tests rather than change the machine's loopback.
func setupLoopback(parent string) error {
	ns, err := netns()
	if err != nil {
		return err
	}
	if ns == parent {
		return fmt.Errorf("still in the parent's network namespace %s", ns)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		return fmt.Errorf("not a new network namespace: it has %d interfaces besides lo", len(ifaces)-1)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_MULTICAST)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo up with multicast: %w", err)
	}
	return nil
}
