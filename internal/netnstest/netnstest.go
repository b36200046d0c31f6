// Package netnstest runs a package's tests inside a network namespace of
// their own whose only interface is a loopback that carries multicast.
// Tests of LAN mechanisms (mDNS) then multicast on that loopback alone,
// and nothing they send reaches the machine's real networks; everything
// else a test does on 127.0.0.1 works there as before.
//
// A package opts in from its TestMain:
//
//	func TestMain(m *testing.M) { netnstest.Main(m) }
//
// and each test that multicasts calls Require first. Where no namespace
// can be made (not Linux, neither root nor unprivileged user namespaces),
// the tests run in place and Require skips those tests, saying why.
package netnstest

import (
	"os"
	"testing"
)

// envInside marks the re-executed test binary: it runs inside the
// namespace and must not re-execute again. Its value names the namespace
// the parent ran in, so the child can refuse to touch the interfaces of
// that one (should the variable leak into a process outside).
const envInside = "PHRASEMEET_TEST_NETNS"

// Main runs the tests inside a new network namespace: it re-executes the
// test binary there, with the same arguments, and exits with its status.
// Inside, it brings the loopback interface up with multicast on and runs m
// (a *testing.M, or a wrapper that checks more after the tests). It does
// not return.
func Main(m interface{ Run() int }) {
	if parent := os.Getenv(envInside); parent != "" {
		unavailable = ""
		if err := setupLoopback(parent); err != nil {
			unavailable = "the namespace's loopback could not carry multicast: " + err.Error()
		}
		os.Exit(m.Run())
	}
	code, err := reexec()
	if err != nil {
		unavailable = "no network namespace for the tests: " + err.Error()
		os.Exit(m.Run())
	}
	os.Exit(code)
}

// unavailable says why the tests do not run in a namespace of their own;
// "" inside one. It is set once, by Main, before any test runs.
var unavailable = "netnstest.Main was not called from TestMain"

// inside reports whether the tests run in a namespace Main made.
func inside() bool { return unavailable == "" }

// Require skips t unless it runs inside a namespace Main made, so a test
// that multicasts never does so on the machine's own networks.
func Require(t testing.TB) {
	t.Helper()
	if !inside() {
		t.Skipf("skipped so that no multicast leaves this machine: %s", unavailable)
	}
}
