package jsinterop

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	phrasemeetDir  string // holds the built binary; removed by TestMain
	phrasemeetOnce sync.Once
	phrasemeetBin  string
	phrasemeetErr  string
)

// phrasemeet builds cmd/phrasemeet once per run, only for the tests that
// run it (so a run without node builds nothing), and returns its path.
func phrasemeet(t testing.TB) string {
	t.Helper()
	phrasemeetOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jsinterop-bin")
		if err != nil {
			phrasemeetErr = err.Error()
			return
		}
		phrasemeetDir = dir
		bin := filepath.Join(dir, "phrasemeet")
		out, err := exec.Command("go", "build", "-o", bin, "../../cmd/phrasemeet").CombinedOutput()
		if err != nil {
			phrasemeetErr = "building cmd/phrasemeet: " + err.Error() + "\n" + string(out)
			return
		}
		phrasemeetBin = bin
	})
	if phrasemeetErr != "" {
		t.Fatal(phrasemeetErr)
	}
	return phrasemeetBin
}
