package discovery_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// readmeMarker is the line that stands right before a ```go block of
// README.md that must compile as a whole program.
const readmeMarker = "<!-- compiled by TestREADMEExamplesCompile"

// TestREADMEExamplesCompile compiles every Go block of README.md marked
// with readmeMarker, each as a program of its own inside this module, so
// a rename or a moved package that leaves the README's examples behind
// fails here rather than in a newcomer's first try. It type-checks with
// go vet (no link: cheap once the module's packages are in the build
// cache), with the environment of go test itself, so offline it needs
// nothing the module cache does not hold.
func TestREADMEExamplesCompile(t *testing.T) {
	blocks, err := readmeBlocks("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d marked Go blocks, want the hello example and the pubsub recipe", len(blocks))
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to compile with")
		}
	}
	for _, b := range blocks {
		t.Run(b.name, func(t *testing.T) {
			// A directory whose name starts with "." is inside the module
			// for the go command but outside ./..., so a go build ./...
			// running beside this test never sees it.
			dir, err := os.MkdirTemp(".", ".readme-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(b.code), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, gobin, "vet", "./"+filepath.ToSlash(dir))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("the README's Go block at line %d does not compile (%v):\n%s", b.line, err, out.String())
			}
		})
	}
}

type readmeBlock struct {
	name string // "line_N", N the line of the block's first line of code
	line int
	code string
}

// readmeBlocks returns the ```go blocks of the Markdown file at path that
// come right after a readmeMarker line. A marker not followed by a Go
// block is an error, so a marker cannot silently stop guarding anything.
func readmeBlocks(path string) ([]readmeBlock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		blocks  []readmeBlock
		marked  bool // the previous line was a marker
		inBlock bool
		cur     readmeBlock
		code    strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case inBlock && strings.TrimSpace(line) == "```":
			cur.code = code.String()
			blocks = append(blocks, cur)
			inBlock = false
		case inBlock:
			code.WriteString(line)
			code.WriteByte('\n')
		case marked:
			if strings.TrimSpace(line) != "```go" {
				return nil, &markerError{line: n - 1}
			}
			inBlock, marked = true, false
			code.Reset()
			cur = readmeBlock{name: fmt.Sprintf("line_%d", n+1), line: n + 1}
		case strings.HasPrefix(strings.TrimSpace(line), readmeMarker):
			marked = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if marked || inBlock {
		return nil, &markerError{line: -1}
	}
	return blocks, nil
}

type markerError struct{ line int }

func (e *markerError) Error() string {
	if e.line < 0 {
		return "README.md ends inside a marked Go block"
	}
	return fmt.Sprintf("README.md line %d: the marker is not followed by a ```go block", e.line)
}
