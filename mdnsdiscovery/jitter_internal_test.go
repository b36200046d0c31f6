package mdnsdiscovery

import (
	"testing"
	"time"
)

// Refreshes and queries are spread by ±10% so peers that started together
// drift apart: every wait stays in the band, and they are not all alike.
func TestJitterSpreads(t *testing.T) {
	seen := make(map[time.Duration]bool)
	for range 200 {
		d := jitter(10*time.Second, 0.1)
		if d < 9*time.Second || d > 11*time.Second {
			t.Fatalf("jitter(10s, 0.1) = %v, outside [9s, 11s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatalf("200 waits, %d distinct: no spread", len(seen))
	}
}
