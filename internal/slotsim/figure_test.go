package slotsim_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/slotsim"
)

var update = flag.Bool("update", false, "rewrite testdata/figure.json from the test's figure")

// goldenFigure has the shape of the figure TestGoals writes (three
// panels, both profiles), kept small, with a series that found nothing
// and one that is hidden.
func goldenFigure() slotsim.Figure {
	ms := func(v ...int) []time.Duration {
		ts := make([]time.Duration, len(v))
		for i, x := range v {
			ts[i] = time.Duration(x) * time.Millisecond
		}
		return ts
	}
	return slotsim.Figure{Width: 1500, Height: 520, Panels: []slotsim.Panel{
		{Title: "two peers within 1 s", XMax: 5 * time.Minute, Series: []slotsim.Series{
			{Name: "default", Times: ms(450, 670, 900, 1550, 2020), Total: 5},
			{Name: "can-sync", Times: ms(1020, 15600, 75610), Total: 5},
		}},
		{Title: "twenty peers within 5 s", XMax: 5 * time.Minute, Series: []slotsim.Series{
			{Name: "default", Times: ms(1400, 1400, 8280, 18390), Total: 4},
			{Name: "can-sync", Total: 4},
		}},
		{Title: "64 peers within 10 s", XMax: 5 * time.Minute, Series: []slotsim.Series{
			{Name: "default", Times: ms(35, 15890, 26690, 32970, 400000), Total: 6},
			{Name: "hidden"},
		}},
	}}
}

// TestWriteFigureGolden pins the JSON that tools/plots reads: its
// tests draw testdata/figure.json, so a change on either side that
// breaks the other fails a test.
func TestWriteFigureGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := slotsim.WriteFigure(&buf, goldenFigure()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "figure.json")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteFigure wrote\n%s\nwant (%s)\n%s", buf.Bytes(), path, want)
	}
}

func TestWriteFigureErrors(t *testing.T) {
	ok := slotsim.Panel{Title: "ok", XMax: time.Minute, Series: []slotsim.Series{
		{Name: "a", Times: []time.Duration{time.Second}, Total: 1},
	}}
	for _, tc := range []struct {
		name string
		fig  slotsim.Figure
		want string
	}{
		{"no panels", slotsim.Figure{}, "no panels"},
		{"negative width", slotsim.Figure{Width: -1, Panels: []slotsim.Panel{ok}}, "negative"},
		{"negative height", slotsim.Figure{Height: -1, Panels: []slotsim.Panel{ok}}, "negative"},
		{"zero xmax", slotsim.Figure{Panels: []slotsim.Panel{ok, {Title: "bad"}}}, `panel 1 ("bad"): XMax`},
		{"total below len(times)", slotsim.Figure{Panels: []slotsim.Panel{{XMax: time.Minute, Series: []slotsim.Series{
			{Name: "a", Times: []time.Duration{time.Second, 2 * time.Second}, Total: 1},
		}}}}, "Total 1 is less than the 2"},
		{"negative total", slotsim.Figure{Panels: []slotsim.Panel{{XMax: time.Minute, Series: []slotsim.Series{
			{Name: "a", Total: -1},
		}}}}, "Total -1"},
		{"negative time", slotsim.Figure{Panels: []slotsim.Panel{{XMax: time.Minute, Series: []slotsim.Series{
			{Name: "a", Times: []time.Duration{-time.Millisecond}, Total: 1},
		}}}}, "negative time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := slotsim.WriteFigure(&buf, tc.fig)
			if err == nil {
				t.Fatal("no error")
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
