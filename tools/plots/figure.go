package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Figure is one figure's data as the simulation writes it: the JSON
// form of slotsim.Figure in the main module (kept as a copy rather
// than imported, so that this module does not depend on the main one;
// internal/slotsim/testdata/figure.json pins the format on both sides).
type Figure struct {
	// Width and Height are the PNG's size in pixels; zero means
	// DefaultWidth and DefaultHeight.
	Width  int `json:"width_px"`
	Height int `json:"height_px"`
	// Panels are drawn left to right, top to bottom.
	Panels []Panel `json:"panels"`
}

// The size of the figures in BENCHMARKS.md, and the largest image
// ReadFigure accepts: a figure is read from a file, and a mistyped size
// must be an error, not an allocation of many gigabytes.
const (
	DefaultWidth  = 1500
	DefaultHeight = 520
	MaxSide       = 10000
)

// ErrBadFigure is wrapped by every error ReadFigure returns for input
// that is not a figure it can draw.
var ErrBadFigure = errors.New("not a figure")

// ReadFigure decodes one Figure from r and checks everything PlotCDF
// would refuse, so that a bad file is reported before any drawing. An
// unknown field is an error (a misspelt "xmax_ns" would otherwise read
// as zero), and so is anything after the figure.
func ReadFigure(r io.Reader) (Figure, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f Figure
	if err := dec.Decode(&f); err != nil {
		return Figure{}, fmt.Errorf("%w: %w", ErrBadFigure, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Figure{}, fmt.Errorf("%w: data after the figure", ErrBadFigure)
	}
	if f.Width == 0 {
		f.Width = DefaultWidth
	}
	if f.Height == 0 {
		f.Height = DefaultHeight
	}
	if f.Width > MaxSide || f.Height > MaxSide {
		return Figure{}, fmt.Errorf("%w: size %dx%d: at most %d pixels a side", ErrBadFigure, f.Width, f.Height, MaxSide)
	}
	if err := validatePlot(f.Width, f.Height, f.Panels); err != nil {
		return Figure{}, fmt.Errorf("%w: %w", ErrBadFigure, err)
	}
	return f, nil
}
