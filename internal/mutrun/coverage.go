package main

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"strings"
)

type block struct{ l0, c0, l1, c1 int }

// coverage holds, per file name, the blocks some test ran.
type coverage map[string][]block

// readCoverage parses a Go cover profile (any mode) and keeps the blocks of
// importPath's own files that ran at least once.
func readCoverage(profile, importPath string) (coverage, error) {
	f, err := os.Open(profile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := coverage{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "mode:") || line == "" {
			continue
		}
		name, b, count, err := parseCoverLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", profile, err)
		}
		if count == 0 || path.Dir(name) != importPath {
			continue
		}
		base := path.Base(name)
		c[base] = append(c[base], b)
	}
	return c, sc.Err()
}

// parseCoverLine parses "path/file.go:L0.C0,L1.C1 statements count".
func parseCoverLine(line string) (string, block, int, error) {
	colon := strings.LastIndex(line, ":")
	if colon < 0 {
		return "", block{}, 0, fmt.Errorf("bad line %q", line)
	}
	var b block
	var stmts, count int
	if _, err := fmt.Sscanf(line[colon+1:], "%d.%d,%d.%d %d %d", &b.l0, &b.c0, &b.l1, &b.c1, &stmts, &count); err != nil {
		return "", block{}, 0, fmt.Errorf("bad line %q: %v", line, err)
	}
	return line[:colon], b, count, nil
}

// covers reports whether a position lies in a block that ran.
func (c coverage) covers(file string, line, col int) bool {
	for _, b := range c[file] {
		after := line > b.l0 || (line == b.l0 && col >= b.c0)
		before := line < b.l1 || (line == b.l1 && col <= b.c1)
		if after && before {
			return true
		}
	}
	return false
}
