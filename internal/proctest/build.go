package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binary is a main package for Main to build.
type Binary struct {
	// Name is the binary's file name.
	Name string
	// Pkg is the package as go build takes it, from the test's directory:
	// ".", "../../cmd/phrasemeet".
	Pkg string
	// Path is set to the built binary's path.
	Path *string
}

// Main is a TestMain for tests that run binaries: it builds bins into a
// temporary directory, runs the tests, removes the directory and exits
// with the tests' status. If a build fails, it prints why and exits 1
// before any test runs.
func Main(m *testing.M, bins ...Binary) {
	dir, err := os.MkdirTemp("", "proctest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range bins {
		*b.Path = filepath.Join(dir, b.Name)
		build := exec.Command("go", "build", "-o", *b.Path, b.Pkg)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.Pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
