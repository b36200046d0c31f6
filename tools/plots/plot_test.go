package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/plotter"
)

// plotPNG renders panels and decodes the result, failing the test on
// any error, so that tests can compare what was actually drawn.
func plotPNG(t *testing.T, width, height int, panels ...Panel) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := PlotCDF(&buf, width, height, panels...); err != nil {
		t.Fatalf("PlotCDF: %v", err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	return img
}

// spread returns n times spread evenly over [from, to].
func spread(n int, from, to time.Duration) []time.Duration {
	ts := make([]time.Duration, n)
	for i := range ts {
		ts[i] = from + time.Duration(i)*(to-from)/time.Duration(max(n-1, 1))
	}
	return ts
}

// samePixels reports whether a and b have the same bounds and pixels.
func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.RGBAModel.Convert(a.At(x, y)) != color.RGBAModel.Convert(b.At(x, y)) {
				return false
			}
		}
	}
	return true
}

// hasColourNear reports whether some pixel of img is within tol (per
// channel) of c; antialiasing means line pixels are rarely exact.
func hasColourNear(img image.Image, c color.Color, tol int) bool {
	want := color.RGBAModel.Convert(c).(color.RGBA)
	near := func(a, b uint8) bool { d := int(a) - int(b); return d >= -tol && d <= tol }
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			got := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if near(got.R, want.R) && near(got.G, want.G) && near(got.B, want.B) {
				return true
			}
		}
	}
	return false
}

func examplePanels() []Panel {
	return []Panel{
		{Title: "100 peers, no skew", XMax: 10 * time.Minute, Series: []Series{
			{Name: "default", Times: spread(4950, 2*time.Second, 90*time.Second), Total: 4950},
			{Name: "can-sync", Times: spread(4900, 300*time.Millisecond, 20*time.Second), Total: 4950},
		}},
		{Title: "100 peers, 30 s skew", XMax: 10 * time.Minute, Series: []Series{
			{Name: "can-sync", Times: spread(4000, time.Second, 5*time.Minute), Total: 4950},
			{Name: "default", Times: spread(4700, 5*time.Second, 4*time.Minute), Total: 4950},
		}},
		{Title: "attack", XMax: 10 * time.Minute, Series: []Series{
			{Name: "default", Times: spread(2000, 30*time.Second, 9*time.Minute), Total: 4950},
			{Name: "can-sync", Total: 4950}, // nothing found: flat at 0
		}},
		{Title: "fast", XMax: 2 * time.Second, Series: []Series{
			{Name: "default", Times: spread(45, 20*time.Millisecond, 1500*time.Millisecond), Total: 45},
		}},
	}
}

func TestPlotCDFSizeAndContent(t *testing.T) {
	const w, h = 900, 700
	img := plotPNG(t, w, h, examplePanels()...)
	if got := img.Bounds(); got != image.Rect(0, 0, w, h) {
		t.Fatalf("image bounds %v, want %dx%d", got, w, h)
	}

	first := color.RGBAModel.Convert(img.At(0, 0))
	uniform := true
	for y := 0; y < h && uniform; y++ {
		for x := 0; x < w; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) != first {
				uniform = false
				break
			}
		}
	}
	if uniform {
		t.Fatal("every pixel has the same colour: nothing was drawn")
	}

	// Both series' colours must appear (in the key and the curves).
	_, colours := seriesColours(examplePanels())
	for _, name := range []string{"default", "can-sync"} {
		if !hasColourNear(img, colours[name], 24) {
			t.Errorf("no pixel near the colour of series %q (%v)", name, colours[name])
		}
	}

	path := filepath.Join(t.TempDir(), "cdf.png")
	var buf bytes.Buffer
	if err := PlotCDF(&buf, w, h, examplePanels()...); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("example written to %s", path)
}

func TestPlotCDFOtherSizes(t *testing.T) {
	// A single panel, a full row and a wrapped grid, at sizes that are
	// not multiples of anything, must all come out at exactly the size
	// asked for; so must an image too small to hold anything legible,
	// rather than failing or panicking inside gonum.
	ps := examplePanels()
	for _, tc := range []struct {
		w, h   int
		panels []Panel
	}{
		{320, 241, ps[:1]},
		{1201, 400, ps[:3]},
		{1000, 999, ps},
		{1, 1, ps},
	} {
		img := plotPNG(t, tc.w, tc.h, tc.panels...)
		if got := img.Bounds(); got != image.Rect(0, 0, tc.w, tc.h) {
			t.Errorf("%d panels at %dx%d: bounds %v", len(tc.panels), tc.w, tc.h, got)
		}
	}
}

func TestPlotCDFErrors(t *testing.T) {
	ok := Panel{Title: "ok", XMax: time.Minute, Series: []Series{
		{Name: "a", Times: []time.Duration{time.Second}, Total: 1},
	}}
	for _, tc := range []struct {
		name   string
		w, h   int
		panels []Panel
		want   string
	}{
		{"no panels", 100, 100, nil, "no panels"},
		{"zero width", 0, 100, []Panel{ok}, "width and height"},
		{"negative height", 100, -1, []Panel{ok}, "width and height"},
		{"total below len(times)", 100, 100, []Panel{{XMax: time.Minute, Series: []Series{
			{Name: "a", Times: []time.Duration{time.Second, 2 * time.Second}, Total: 1},
		}}}, "Total 1 is less than the 2"},
		{"times with zero total", 100, 100, []Panel{{XMax: time.Minute, Series: []Series{
			{Name: "a", Times: []time.Duration{time.Second}, Total: 0},
		}}}, "Total 0 is less than the 1"},
		{"negative total", 100, 100, []Panel{{XMax: time.Minute, Series: []Series{
			{Name: "a", Total: -1},
		}}}, "Total -1"},
		{"negative time", 100, 100, []Panel{{XMax: time.Minute, Series: []Series{
			{Name: "a", Times: []time.Duration{time.Second, -time.Millisecond}, Total: 2},
		}}}, "negative time"},
		{"zero xmax", 100, 100, []Panel{ok, {Title: "bad"}}, "XMax"},
		{"negative xmax", 100, 100, []Panel{{XMax: -time.Second}}, "XMax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := PlotCDF(&buf, tc.w, tc.h, tc.panels...)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

func TestPlotCDFFractionFoundMatters(t *testing.T) {
	times := spread(50, time.Second, 30*time.Second)
	all := Panel{Title: "p", XMax: time.Minute, Series: []Series{{Name: "s", Times: times, Total: 50}}}
	half := Panel{Title: "p", XMax: time.Minute, Series: []Series{{Name: "s", Times: times, Total: 100}}}
	if samePixels(plotPNG(t, 400, 300, all), plotPNG(t, 400, 300, half)) {
		t.Fatal("all pairs found and half the pairs found drew the same image")
	}
	// Rendering is deterministic, so the check above compares content
	// and not noise.
	if !samePixels(plotPNG(t, 400, 300, all), plotPNG(t, 400, 300, all)) {
		t.Fatal("the same input drew two different images")
	}
}

func TestPlotCDFEmptyAndSkippedSeries(t *testing.T) {
	base := Panel{Title: "p", XMax: time.Minute, Series: []Series{
		{Name: "found", Times: spread(10, time.Second, 10*time.Second), Total: 10},
	}}

	// A Total == 0 series is skipped: no curve and no key entry.
	withSkipped := base
	withSkipped.Series = append(append([]Series(nil), base.Series...), Series{Name: "skipped"})
	if !samePixels(plotPNG(t, 400, 300, base), plotPNG(t, 400, 300, withSkipped)) {
		t.Error("a Total == 0 series changed the image")
	}

	// A series with nothing found but Total > 0 is drawn (flat at 0,
	// with a key entry), so it must change the image.
	withEmpty := base
	withEmpty.Series = append(append([]Series(nil), base.Series...), Series{Name: "none found", Total: 10})
	if samePixels(plotPNG(t, 400, 300, base), plotPNG(t, 400, 300, withEmpty)) {
		t.Error("a series with no times and Total > 0 was not drawn")
	}

	// A panel with no series at all still draws its axes.
	plotPNG(t, 300, 200, Panel{Title: "empty", XMax: time.Second})
}

func TestPlotCDFColoursByName(t *testing.T) {
	panels := []Panel{
		{XMax: time.Minute, Series: []Series{{Name: "a", Total: 1}, {Name: "b", Total: 1}}},
		{XMax: time.Minute, Series: []Series{{Name: "b", Total: 1}, {Name: "c", Total: 1}, {Name: "a", Total: 1}}},
	}
	names, cs := seriesColours(panels)
	if want := []string{"a", "b", "c"}; !slices.Equal(names, want) {
		t.Errorf("names in key order = %q, want %q", names, want)
	}
	if len(cs) != 3 {
		t.Fatalf("got %d colours for 3 names", len(cs))
	}
	if cs["a"] == cs["b"] || cs["b"] == cs["c"] || cs["a"] == cs["c"] {
		t.Errorf("names share a colour: %v", cs)
	}

	// More names than the fixed palette holds must still get distinct
	// colours.
	var many []Series
	for _, n := range strings.Split("a b c d e f g h i j k", " ") {
		many = append(many, Series{Name: n, Total: 1})
	}
	_, cs = seriesColours([]Panel{{XMax: time.Minute, Series: many}})
	seen := map[color.RGBA]string{}
	for n, c := range cs {
		rgba := color.RGBAModel.Convert(c).(color.RGBA)
		if prev, dup := seen[rgba]; dup {
			t.Errorf("%q and %q share colour %v", prev, n, rgba)
		}
		seen[rgba] = n
	}
	if len(cs) != len(many) {
		t.Errorf("got %d colours for %d names", len(cs), len(many))
	}
}

func TestPlotCDFPoints(t *testing.T) {
	s := Series{
		Name: "s",
		// Out of order, with a duplicate, a zero, one before the left
		// edge and one past the right edge.
		Times: []time.Duration{3 * time.Second, 0, time.Second, 3 * time.Second, 50 * time.Millisecond, 20 * time.Second},
		Total: 8,
	}
	got := cdfPoints(s, 0.1, 10)
	want := plotter.XYs{
		{X: 0.1, Y: 2.0 / 8}, // 0 and 50 ms are found at the left edge
		{X: 1, Y: 3.0 / 8},
		{X: 3, Y: 5.0 / 8},  // both 3 s samples count at once
		{X: 10, Y: 5.0 / 8}, // 20 s is off the axis; 3 pairs never found
	}
	if len(got) != len(want) {
		t.Fatalf("cdfPoints = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("cdfPoints = %v, want %v", got, want)
		}
	}

	// Nothing found: a flat line at 0 across the whole axis.
	got = cdfPoints(Series{Name: "none", Total: 5}, 0.1, 10)
	if len(got) != 2 || got[0] != (plotter.XY{X: 0.1}) || got[1] != (plotter.XY{X: 10}) {
		t.Errorf("empty series: cdfPoints = %v", got)
	}
}

func TestPlotCDFAxisMin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		times []time.Duration
		xmax  time.Duration
		want  float64
	}{
		{"default", []time.Duration{0, time.Second}, time.Minute, 0.1},
		{"smaller data", []time.Duration{35 * time.Millisecond, time.Second}, time.Minute, 0.01},
		{"short run", nil, 50 * time.Millisecond, 0.01},
		{"run of exactly 0.1 s", nil, 100 * time.Millisecond, 0.01},
	} {
		p := Panel{XMax: tc.xmax, Series: []Series{{Name: "s", Times: tc.times, Total: len(tc.times) + 1}}}
		got := axisMin(p, tc.xmax.Seconds())
		// Powers of ten from math.Pow10 are exact for these inputs.
		if got != tc.want {
			t.Errorf("%s: axisMin = %v, want %v", tc.name, got, tc.want)
		}
		if got >= tc.xmax.Seconds() {
			t.Errorf("%s: axisMin %v is not below XMax %v", tc.name, got, tc.xmax)
		}
	}
}
