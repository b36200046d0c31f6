// Command plots draws the figures of BENCHMARKS.md from the data the
// rendezvous simulation writes (internal/slotsim, TestGoals with
// PHRASEMEET_SIM_OUT set): one empirical CDF of time to mutual
// discovery per scenario, both profiles per panel.
//
// It is a module of its own so that gonum/plot, and the font, PDF, SVG
// and raster modules it brings, stay out of the main module: a user of
// the discovery packages never downloads them. From the repository
// root:
//
//	go -C tools/plots run . /tmp/simout/slots.json /tmp/simout/slots.png
//
// The input is the JSON that slotsim.WriteFigure writes; see Figure.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command without the process around it, so tests can call
// it. It returns the exit status: 0 on success (and for -h), 1 when the
// figure could not be drawn, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plots", flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: plots FIGURE.json OUT.png")
		fmt.Fprintln(w, "Draws the time-to-discovery CDFs that TestGoals writes with PHRASEMEET_SIM_OUT.")
	}
	// Parse calls Usage on -h as well as on a mistake; printed below
	// instead, so that help goes to stdout and a mistake to stderr, once.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		usage(stderr)
		return 2
	}
	if fs.NArg() != 2 {
		usage(stderr)
		return 2
	}
	if err := render(fs.Arg(0), fs.Arg(1)); err != nil {
		fmt.Fprintf(stderr, "plots: %v\n", err)
		return 1
	}
	return 0
}

// render draws the figure in the JSON file inPath as a PNG at outPath.
// The PNG is written beside outPath and renamed into place, so that a
// failure leaves an existing figure as it was.
func render(inPath, outPath string) error {
	in, err := os.Open(inPath)
	if err != nil {
		return err
	}
	defer in.Close()
	fig, err := ReadFigure(in)
	if err != nil {
		return fmt.Errorf("%s: %w", inPath, err)
	}
	var png bytes.Buffer
	if err := PlotCDF(&png, fig.Width, fig.Height, fig.Panels...); err != nil {
		return fmt.Errorf("%s: %w", inPath, err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(outPath), ".plots-*.png")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(png.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), outPath)
}
