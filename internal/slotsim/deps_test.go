package slotsim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plottingModules are the modules the figures in BENCHMARKS.md need
// (gonum/plot and what it draws fonts, PDF, SVG and rasters with).
// They live in the tools/plots module; listed in the main module's
// go.mod, every newcomer's `go test ./...` would download them.
var plottingModules = []string{
	"gonum.org/v1/plot",
	"gonum.org/v1/gonum",
	"codeberg.org/go-fonts/",
	"codeberg.org/go-latex/",
	"codeberg.org/go-pdf/",
	"git.sr.ht/~sbinet/gg",
	"github.com/ajstarks/svgo",
	"github.com/golang/freetype",
}

// TestMainModuleHasNoPlottingDeps guards the split: the main module's
// go.mod (which, since Go 1.17, lists every module that provides a
// package to the main module's builds and tests) names none of the
// plotting modules.
func TestMainModuleHasNoPlottingDeps(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(gomod), "\n") {
		for _, m := range plottingModules {
			if strings.Contains(line, m) {
				t.Errorf("go.mod:%d requires %s (%q); plotting belongs in tools/plots", i+1, m, strings.TrimSpace(line))
			}
		}
	}
}
