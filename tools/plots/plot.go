package main

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one curve of a panel: the times to mutual discovery of one
// configuration (a profile, a skew, ...) in one scenario.
type Series struct {
	// Name is the legend label, e.g. "default" or "can-sync". Series
	// with the same Name get the same colour in every panel, so a reader
	// can follow one configuration across the grid.
	Name string `json:"name"`
	// Times has one sample per discovered pair, in any order.
	Times []time.Duration `json:"times_ns"`
	// Total is the number of pairs that should have been discovered.
	// It, not len(Times), is the denominator of the CDF, so pairs that
	// were never discovered keep the curve below 1 instead of being
	// silently dropped. Total < len(Times) is an error; a series with
	// Total == 0 has nothing to show and is skipped.
	Total int `json:"total"`
}

// Panel is one plot: the empirical CDF of each series' times, on a
// shared log-scale time axis.
type Panel struct {
	// Title is drawn above the panel.
	Title string `json:"title"`
	// XMax is the right end of the x axis, normally the run's duration:
	// a curve that is still below 1 there shows pairs that were not
	// found within the run. Times above XMax are counted in Total but
	// fall off the right edge.
	XMax time.Duration `json:"xmax_ns"`
	// Series are the curves, drawn in order.
	Series []Series `json:"series"`
}

// Geometry of the figure. The PNG is rendered at a fixed DPI so that
// pixel sizes map to predictable font sizes; the panels are tiled at
// most panelsPerRow wide because more than three side by side leaves
// too little width for a log axis spanning several decades.
const (
	plotDPI      = 96
	panelsPerRow = 3
	// defaultXMin is the left end of the x axis unless data is
	// smaller. A fixed left end keeps the panels of one figure, and
	// figures of different runs, comparable; data below it extends the
	// axis rather than being hidden at the edge.
	defaultXMin = 0.1
	// targetLevel is the fraction of pairs the goals are
	// stated against, marked so a reader sees where each curve crosses.
	targetLevel = 0.95
)

// PlotCDF writes a PNG image, width by height pixels, showing one
// empirical CDF of time to mutual discovery per panel, the panels laid
// out in a grid of up to three per row under one key naming the series.
// It is meant for the figures in BENCHMARKS.md, so it validates its
// input and returns an error rather than drawing a misleading plot: no
// panels, a non-positive size, a non-positive XMax, a negative time, a
// negative Total or Total < len(Times) are errors.
func PlotCDF(w io.Writer, width, height int, panels ...Panel) (err error) {
	if err := validatePlot(width, height, panels); err != nil {
		return err
	}

	// gonum/plot reports some conditions (a degenerate canvas or
	// tiling, invalid style settings) by panicking. The input is
	// validated above so this should not happen, but a benchmark
	// helper must not crash the program that calls it: turn any panic
	// into an error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PlotCDF: drawing failed: %v", r)
		}
	}()

	names, colours := seriesColours(panels)
	cols := min(panelsPerRow, len(panels))
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		pl, err := cdfPlot(p, colours)
		if err != nil {
			return fmt.Errorf("PlotCDF: panel %d (%q): %w", i, p.Title, err)
		}
		grid[i/cols][i%cols] = pl
	}

	// Drawing onto an image of exactly the requested size (rather than
	// a size in inches) guarantees the PNG's pixel dimensions.
	canvas := vgimg.NewWith(
		vgimg.UseImage(image.NewRGBA(image.Rect(0, 0, width, height))),
		vgimg.UseDPI(plotDPI),
	)
	// One key for the whole figure rather than one per panel: colours
	// are the same in every panel, and a key inside a panel inevitably
	// covers some curve (CDFs that rise early fill the top left, runs
	// that find few pairs the bottom right).
	dc := drawKey(draw.New(canvas), keyEntries(names, colours))
	tiles := draw.Tiles{
		Rows:      rows,
		Cols:      cols,
		PadX:      vg.Points(12),
		PadY:      vg.Points(12),
		PadTop:    vg.Points(6),
		PadBottom: vg.Points(6),
		PadLeft:   vg.Points(6),
		PadRight:  vg.Points(12),
	}
	// Align gives every panel the same data area, so the axes of panels
	// in one column line up and curves can be compared by eye.
	for r, row := range plot.Align(grid, tiles, dc) {
		for c, cv := range row {
			if grid[r][c] != nil {
				grid[r][c].Draw(cv)
			}
		}
	}

	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(w); err != nil {
		return fmt.Errorf("PlotCDF: writing PNG: %w", err)
	}
	return nil
}

// validatePlot checks everything PlotCDF's caller controls, so that a
// mistake in a benchmark shows up as an error naming the bad panel and
// series rather than as a wrong picture.
func validatePlot(width, height int, panels []Panel) error {
	if len(panels) == 0 {
		return errors.New("PlotCDF: no panels")
	}
	if width <= 0 || height <= 0 {
		return fmt.Errorf("PlotCDF: size %dx%d: width and height must be positive", width, height)
	}
	for i, p := range panels {
		if p.XMax <= 0 {
			return fmt.Errorf("PlotCDF: panel %d (%q): XMax %v must be positive", i, p.Title, p.XMax)
		}
		for _, s := range p.Series {
			if s.Total < 0 {
				return fmt.Errorf("PlotCDF: panel %d (%q), series %q: Total %d is negative",
					i, p.Title, s.Name, s.Total)
			}
			if s.Total < len(s.Times) {
				return fmt.Errorf("PlotCDF: panel %d (%q), series %q: Total %d is less than the %d times given",
					i, p.Title, s.Name, s.Total, len(s.Times))
			}
			for _, t := range s.Times {
				if t < 0 {
					return fmt.Errorf("PlotCDF: panel %d (%q), series %q: negative time %v",
						i, p.Title, s.Name, t)
				}
			}
		}
	}
	return nil
}

// seriesColours gives each distinct name of a drawn series a colour,
// in order of first appearance across all panels, so that the same
// configuration has the same colour in every panel of the figure. It
// returns the names in that order too, for the key.
func seriesColours(panels []Panel) ([]string, map[string]color.Color) {
	var names []string
	seen := map[string]bool{}
	for _, p := range panels {
		for _, s := range p.Series {
			if s.Total > 0 && !seen[s.Name] {
				seen[s.Name] = true
				names = append(names, s.Name)
			}
		}
	}
	// The dark palette reads well as thin lines on white; past its size
	// fall back to evenly spaced hues so that colours stay distinct
	// instead of repeating.
	cs := plotutil.DarkColors
	if len(names) > len(cs) {
		cs = palette.Rainbow(len(names), palette.Red, palette.Magenta, 1, 0.8, 1).Colors()
	}
	m := make(map[string]color.Color, len(names))
	for i, n := range names {
		m[n] = cs[i]
	}
	return names, m
}

// seriesStyle is how a curve is drawn, shared by the plot and the key
// so that the two cannot disagree.
func seriesStyle(c color.Color) draw.LineStyle {
	return draw.LineStyle{Color: c, Width: vg.Points(1.5)}
}

// targetStyle is the thin dashed line at targetLevel: visible as a
// reference without being mistaken for a curve.
func targetStyle() draw.LineStyle {
	return draw.LineStyle{
		Color:  color.Gray{Y: 0x70},
		Width:  vg.Points(0.5),
		Dashes: []vg.Length{vg.Points(4), vg.Points(3)},
	}
}

// keyEntry is one item of the figure's key.
type keyEntry struct {
	label string
	style draw.LineStyle
}

// Thumbnail implements plot.Thumbnailer: a short horizontal stroke in
// the entry's line style.
func (e keyEntry) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(e.style, c.Min.X, y, c.Max.X, y)
}

// keyEntries lists the series in colour order, then the target line.
func keyEntries(names []string, colours map[string]color.Color) []keyEntry {
	es := make([]keyEntry, 0, len(names)+1)
	for _, n := range names {
		es = append(es, keyEntry{label: n, style: seriesStyle(colours[n])})
	}
	label := strconv.FormatFloat(targetLevel*100, 'f', -1, 64) + "% of pairs"
	return append(es, keyEntry{label: label, style: targetStyle()})
}

// drawKey draws the entries side by side, centred, across the top of
// c, wrapping onto more lines when they do not fit the width, and
// returns the part of c below the key for the panels.
func drawKey(c draw.Canvas, entries []keyEntry) draw.Canvas {
	var (
		pad = vg.Points(6)  // around the key
		gap = vg.Points(18) // between entries on a line
	)
	type item struct {
		l    plot.Legend
		w, h vg.Length
	}
	var lines [][]item
	var widths []vg.Length
	avail := c.Size().X - 2*pad
	for _, e := range entries {
		// A one-entry plot.Legend per item reuses gonum's text and
		// thumbnail layout; the side-by-side arrangement is ours
		// because gonum's legend only stacks entries vertically.
		l := plot.NewLegend()
		l.Top, l.Left = true, true
		l.Add(e.label, e)
		size := l.Rectangle(c).Size()
		it := item{l: l, w: size.X, h: size.Y + l.TextStyle.FontExtents().Descent}
		if n := len(lines); n > 0 && widths[n-1]+gap+it.w <= avail {
			lines[n-1] = append(lines[n-1], it)
			widths[n-1] += gap + it.w
			continue
		}
		lines = append(lines, []item{it})
		widths = append(widths, it.w)
	}

	y := c.Max.Y - pad
	for i, line := range lines {
		var h vg.Length
		for _, it := range line {
			h = max(h, it.h)
		}
		x := c.Min.X + (c.Size().X-widths[i])/2
		for _, it := range line {
			sub := c
			sub.Rectangle = vg.Rectangle{Min: vg.Point{X: x, Y: y - h}, Max: vg.Point{X: x + it.w, Y: y}}
			it.l.Draw(sub)
			x += it.w + gap
		}
		y -= h
	}
	c.Max.Y = y
	return c
}

// cdfPlot builds the plot for one panel.
func cdfPlot(p Panel, colours map[string]color.Color) (*plot.Plot, error) {
	xmax := p.XMax.Seconds()
	xmin := axisMin(p, xmax)

	pl := plot.New()
	pl.Title.Text = p.Title
	pl.X.Label.Text = "time to mutual discovery (s)"
	pl.Y.Label.Text = "fraction of pairs"
	// The x axis is log scale, but the plot is drawn in log10(seconds)
	// on a linear axis with ticks labelled in seconds, rather than with
	// plot.LogScale: gonum places the centred axis label at the
	// arithmetic mean of the range, which on a log axis spanning
	// decades lies near the right end, and then shrinks the data area
	// to make room for it there.
	pl.X.Tick.Marker = logTicks{}

	for _, s := range p.Series {
		if s.Total == 0 {
			continue
		}
		line, err := plotter.NewLine(log10X(cdfPoints(s, xmin, xmax)))
		if err != nil {
			return nil, fmt.Errorf("series %q: %w", s.Name, err)
		}
		// PostStep draws each point's level until the next point, i.e.
		// a right-continuous step function: exactly the empirical CDF.
		line.StepStyle = plotter.PostStep
		line.LineStyle = seriesStyle(colours[s.Name])
		pl.Add(line)
	}

	target, err := plotter.NewLine(log10X(plotter.XYs{{X: xmin, Y: targetLevel}, {X: xmax, Y: targetLevel}}))
	if err != nil {
		return nil, err
	}
	target.LineStyle = targetStyle()
	pl.Add(target)

	// Fixed ranges, set after Add (which widens them to the data), so
	// every panel shows the whole run and the full 0..1 fraction.
	pl.X.Min, pl.X.Max = math.Log10(xmin), math.Log10(xmax)
	pl.Y.Min, pl.Y.Max = 0, 1
	return pl, nil
}

// axisMin returns the left end of the log x axis in seconds: 0.1 s,
// or the power of ten at or below the smallest positive time if some
// pair was discovered sooner, and always below xmax so the axis has a
// positive length. Zero times cannot be placed on a log axis; they are
// counted from the left edge.
func axisMin(p Panel, xmax float64) float64 {
	xmin := defaultXMin
	for _, s := range p.Series {
		if s.Total == 0 {
			continue
		}
		for _, t := range s.Times {
			if sec := t.Seconds(); sec > 0 && sec < xmin {
				xmin = sec
			}
		}
	}
	xmin = math.Pow10(int(math.Floor(math.Log10(xmin))))
	if xmin >= xmax {
		xmin = math.Pow10(int(math.Ceil(math.Log10(xmax))) - 1)
		if xmin >= xmax { // xmax is itself a power of ten
			xmin /= 10
		}
	}
	return xmin
}

// cdfPoints returns the corners of the empirical CDF of s on
// [xmin, xmax]: F(x) = (number of times <= x) / Total, one point at
// each distinct time inside the range plus both ends, for drawing
// with PostStep. Times beyond xmax are outside the axis and left out.
func cdfPoints(s Series, xmin, xmax float64) plotter.XYs {
	secs := make([]float64, len(s.Times))
	for i, t := range s.Times {
		secs[i] = t.Seconds()
	}
	slices.Sort(secs)
	total := float64(s.Total)

	// Everything at or before the left edge (including zero times)
	// is already found when the curve starts.
	n := 0
	for n < len(secs) && secs[n] <= xmin {
		n++
	}
	pts := plotter.XYs{{X: xmin, Y: float64(n) / total}}
	for n < len(secs) && secs[n] <= xmax {
		x := secs[n]
		for n < len(secs) && secs[n] == x {
			n++
		}
		pts = append(pts, plotter.XY{X: x, Y: float64(n) / total})
	}
	if last := pts[len(pts)-1]; last.X < xmax {
		pts = append(pts, plotter.XY{X: xmax, Y: last.Y})
	}
	return pts
}

// log10X replaces each point's x, in seconds, by its base-10
// logarithm, the coordinate of the plot's x axis. Every x is positive:
// cdfPoints starts at the axis minimum.
func log10X(pts plotter.XYs) plotter.XYs {
	for i := range pts {
		pts[i].X = math.Log10(pts[i].X)
	}
	return pts
}

// logTicks marks the x axis, whose coordinate is log10(seconds), at
// 1..9 times each power of ten, labelled in seconds. Powers of ten are
// labelled, and 2 and 5 as well when the axis spans at most two
// decades so that a short axis still has a few labels; labels are
// plain decimals ("600", "0.05") because those read better in a
// benchmark than exponent form.
type logTicks struct{}

// Ticks implements plot.Ticker; lowest and highest are log10(seconds).
func (logTicks) Ticks(lowest, highest float64) []plot.Tick {
	// Slack for rounding in Log10, so that ticks at the very ends of
	// the axis (it normally starts at a power of ten) are kept.
	const eps = 1e-9
	lo := int(math.Floor(lowest + eps))
	hi := int(math.Ceil(highest - eps))
	labelMid := hi-lo <= 2
	var ticks []plot.Tick
	for d := lo; d <= hi; d++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow10(d)
			pos := math.Log10(v)
			if pos < lowest-eps || pos > highest+eps {
				continue
			}
			t := plot.Tick{Value: pos}
			if m == 1 || (labelMid && (m == 2 || m == 5)) {
				t.Label = strconv.FormatFloat(v, 'f', max(-d, 0), 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
