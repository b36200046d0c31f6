package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is the figure the main module's slotsim.WriteFigure test pins:
// drawing it here checks that the two modules agree on the format.
var golden = filepath.Join("..", "..", "internal", "slotsim", "testdata", "figure.json")

func TestRunDrawsSimulationFigure(t *testing.T) {
	out := filepath.Join(t.TempDir(), "slots.png")
	var stdout, stderr bytes.Buffer
	if code := run([]string{golden, out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if stdout.Len()+stderr.Len() != 0 {
		t.Errorf("a successful run printed %q, %q", stdout.String(), stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	// The size the simulation asked for, not the default.
	if got, want := img.Bounds(), image.Rect(0, 0, 1500, 520); got != want {
		t.Errorf("bounds %v, want %v", got, want)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("output mode: %v, %v", fi.Mode(), err)
	}
}

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		stdoutHas string
		stderrHas string
	}{
		{nil, 2, "", "usage: plots"},
		{[]string{"only-one.json"}, 2, "", "usage: plots"},
		{[]string{"-h"}, 0, "usage: plots", ""},
		{[]string{"--help"}, 0, "usage: plots", ""},
		{[]string{"--width", "3", "a", "b"}, 2, "", "flag provided but not defined: -width"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
		if tc.stdoutHas != "" && !strings.Contains(stdout.String(), tc.stdoutHas) {
			t.Errorf("%q: stdout %q lacks %q", tc.args, stdout.String(), tc.stdoutHas)
		}
		if tc.stderrHas != "" && !strings.Contains(stderr.String(), tc.stderrHas) {
			t.Errorf("%q: stderr %q lacks %q", tc.args, stderr.String(), tc.stderrHas)
		}
		// Help goes to stdout only; a mistake to stderr only, once.
		if tc.stderrHas == "" && stderr.Len() != 0 {
			t.Errorf("%q: stderr %q, want nothing", tc.args, stderr.String())
		}
		if tc.stdoutHas == "" && stdout.Len() != 0 {
			t.Errorf("%q: stdout %q, want nothing", tc.args, stdout.String())
		}
		if n := strings.Count(stdout.String()+stderr.String(), "usage: plots"); n > 1 {
			t.Errorf("%q: usage printed %d times", tc.args, n)
		}
	}
}

// A bad input file is reported with its name, and the figure already
// at the output path is left as it was, with no temporary file behind.
func TestRunBadInputKeepsOldFigure(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "slots.png")
	old := []byte("the previous figure")
	if err := os.WriteFile(out, old, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"panels":[{"title":"t","xmax":60000000000}]}`, // misspelt field
		`{"panels":[]}`,
		`not json`,
	} {
		in := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(in, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{in, out}, &stdout, &stderr); code != 1 {
			t.Errorf("%s: exit %d, want 1", body, code)
		}
		if !strings.Contains(stderr.String(), "bad.json") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s: stderr %q: want one line naming the file", body, stderr.String())
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
			t.Errorf("%s: the previous figure was overwritten", body)
		}
	}
	if code := run([]string{filepath.Join(dir, "missing.json"), out}, new(bytes.Buffer), new(bytes.Buffer)); code != 1 {
		t.Errorf("missing input: exit %d, want 1", code)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "slots.png" && e.Name() != "bad.json" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestReadFigure(t *testing.T) {
	const panel = `{"title":"p","xmax_ns":60000000000,"series":[{"name":"a","times_ns":[1000000000],"total":2}]}`
	f, err := ReadFigure(strings.NewReader(`{"panels":[` + panel + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Width != DefaultWidth || f.Height != DefaultHeight {
		t.Errorf("size %dx%d, want the default %dx%d", f.Width, f.Height, DefaultWidth, DefaultHeight)
	}
	if s := f.Panels[0].Series[0]; s.Total != 2 || len(s.Times) != 1 || s.Times[0].Seconds() != 1 {
		t.Errorf("series read as %+v", s)
	}

	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "EOF"},
		{"unknown field", `{"panels":[{"title":"p","xmax":60}]}`, `unknown field "xmax"`},
		{"trailing data", `{"panels":[` + panel + `]} {}`, "data after the figure"},
		{"too wide", `{"width_px":10001,"panels":[` + panel + `]}`, "at most 10000"},
		{"negative height", `{"height_px":-5,"panels":[` + panel + `]}`, "width and height must be positive"},
		{"no panels", `{"panels":[]}`, "no panels"},
		{"zero xmax", `{"panels":[{"title":"p"}]}`, "XMax"},
		{"total too small", `{"panels":[{"xmax_ns":1,"series":[{"name":"a","times_ns":[1,2],"total":1}]}]}`, "Total 1 is less than the 2"},
		{"negative time", `{"panels":[{"xmax_ns":1,"series":[{"name":"a","times_ns":[-1],"total":1}]}]}`, "negative time"},
		{"wrong type", `{"panels":[{"xmax_ns":"1m"}]}`, "cannot unmarshal"},
	} {
		_, err := ReadFigure(strings.NewReader(tc.in))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !errors.Is(err, ErrBadFigure) {
			t.Errorf("%s: %v does not wrap ErrBadFigure", tc.name, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
	}
}

// FuzzReadFigure: whatever the file holds, reading it and drawing what
// was accepted returns an error or an image, and never panics.
func FuzzReadFigure(f *testing.F) {
	if b, err := os.ReadFile(golden); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"panels":[{"title":"p","xmax_ns":1,"series":[{"name":"a","times_ns":[0,1,1],"total":3}]}]}`))
	f.Add([]byte(`{"width_px":1,"height_px":1,"panels":[{"xmax_ns":9223372036854775807,"series":[{"total":9223372036854775807}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fig, err := ReadFigure(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadFigure) {
				t.Fatalf("error %v does not wrap ErrBadFigure", err)
			}
			return
		}
		// Small, so that the fuzzer spends its time on the input rather
		// than on filling pixels.
		var buf bytes.Buffer
		if err := PlotCDF(&buf, 64, 48, fig.Panels...); err != nil {
			t.Fatalf("ReadFigure accepted a figure PlotCDF refuses: %v", err)
		}
	})
}
