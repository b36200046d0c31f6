package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
	"github.com/phrasemeet/discovery/internal/slottest"
)

// TestJoinProcessesBesideALyingRelay runs three `phrasemeet join`
// processes on the library's defaults over two relays: one answers first,
// acknowledges every PUT and keeps only the first packet of each key; the
// other is honest and 3-20 ms slower. Each process must print every other
// as found, as over two honest relays.
func TestJoinProcessesBesideALyingRelay(t *testing.T) {
	liar := slottest.LyingRelay(t)
	honest := slottest.Serve(t, slottest.Delayed(slottest.RelayHandler(t), 3*time.Millisecond, 20*time.Millisecond))
	env := []string{passphraseEnv + "=" + secretPhrase}
	const n = 3
	procs := make([]*proctest.Proc, n)
	ids := make([]string, n)
	for i := range procs {
		procs[i] = startProc(t, env, "join", "--relay", liar, "--relay", honest)
		ids[i] = procs[i].WaitLine(proctest.Stdout, announcedLine, 60*time.Second)[1]
	}
	// The issue this guards against: after 40 s one of three such
	// processes saw neither other, the two others one each.
	deadline := time.Now().Add(40 * time.Second)
	start := time.Now()
	for i, p := range procs {
		for j, id := range ids {
			if j != i {
				p.WaitLine(proctest.Stdout, regexp.MustCompile(`^found `+id+` via slots$`), time.Until(deadline))
			}
		}
	}
	t.Logf("every process found every other %v after the last announced", time.Since(start).Round(time.Millisecond))
}
