//go:build !linux

package netnstest

import "errors"

func reexec() (int, error) {
	return 0, errors.New("network namespaces exist on Linux only")
}

func setupLoopback(string) error { return errors.New("network namespaces exist on Linux only") }
