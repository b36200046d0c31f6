package slotsim

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Figure is the data of one figure of BENCHMARKS.md: empirical CDFs of
// time to mutual discovery, one panel per scenario. WriteFigure writes
// it as JSON and the command in tools/plots draws it; the drawing lives
// in that separate module so that its plotting, font, PDF and SVG
// dependencies stay out of this one. testdata/figure.json pins the
// format both sides read.
type Figure struct {
	// Width and Height are the image's size in pixels; zero leaves the
	// choice to the plotting tool.
	Width  int `json:"width_px"`
	Height int `json:"height_px"`
	// Panels are drawn left to right, top to bottom, up to three a row.
	Panels []Panel `json:"panels"`
}

// Panel is one plot of a Figure: the empirical CDF of each series'
// times, on a shared log-scale time axis.
type Panel struct {
	// Title is drawn above the panel.
	Title string `json:"title"`
	// XMax is the right end of the x axis, normally the run's duration:
	// a curve that is still below 1 there shows pairs that were not
	// found within the run.
	XMax time.Duration `json:"xmax_ns"`
	// Series are the curves, drawn in order.
	Series []Series `json:"series"`
}

// Series is one curve of a Panel: the times to mutual discovery of one
// configuration (a profile, a skew, ...) in one scenario.
type Series struct {
	// Name is the legend label; series with the same Name get the same
	// colour in every panel.
	Name string `json:"name"`
	// Times has one sample per discovered pair, in any order.
	Times []time.Duration `json:"times_ns"`
	// Total is the number of pairs that should have been discovered,
	// the CDF's denominator, so that pairs never discovered keep the
	// curve below 1. It is at least len(Times); zero hides the series.
	Total int `json:"total"`
}

// WriteFigure writes f as one line of JSON. It refuses what the
// plotting tool would refuse (see tools/plots), so that a mistake shows
// up where the data is made and not when it is drawn.
func WriteFigure(w io.Writer, f Figure) error {
	if f.Width < 0 || f.Height < 0 {
		return fmt.Errorf("slotsim: WriteFigure: size %dx%d is negative", f.Width, f.Height)
	}
	if len(f.Panels) == 0 {
		return fmt.Errorf("slotsim: WriteFigure: no panels")
	}
	for i, p := range f.Panels {
		if p.XMax <= 0 {
			return fmt.Errorf("slotsim: WriteFigure: panel %d (%q): XMax %v must be positive", i, p.Title, p.XMax)
		}
		for _, s := range p.Series {
			if s.Total < len(s.Times) {
				return fmt.Errorf("slotsim: WriteFigure: panel %d (%q), series %q: Total %d is less than the %d times given",
					i, p.Title, s.Name, s.Total, len(s.Times))
			}
			for _, t := range s.Times {
				if t < 0 {
					return fmt.Errorf("slotsim: WriteFigure: panel %d (%q), series %q: negative time %v", i, p.Title, s.Name, t)
				}
			}
		}
	}
	if err := json.NewEncoder(w).Encode(f); err != nil {
		return fmt.Errorf("slotsim: WriteFigure: %w", err)
	}
	return nil
}
