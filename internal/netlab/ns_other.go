//go:build !linux

package netlab

import "errors"

var errNotLinux = errors.New("network namespaces exist on Linux only")

func inNamespace(string, func() error) error { return errNotLinux }

func pidsIn(string) ([]int, error) { return nil, errNotLinux }

func killAll(string) error { return nil }

func processExists(int) bool { return true }
