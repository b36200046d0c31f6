package libp2padapter

import (
	"testing"
	"time"
)

// unitDraw maps the connector's one Float64 per delay onto the range the
// jitter asks for: 0 to the bottom, just under 1 to the top, and the
// middle to the middle.
func TestUnitDraw(t *testing.T) {
	for _, c := range []struct {
		u    float64
		n    int64
		want int64
	}{{0, 10, 0}, {0.5, 10, 5}, {0.999, 10, 9}, {1, 10, 9}, {-0.5, 10, 0}} {
		if got := unitDraw(c.u).Int64N(c.n); got != c.want {
			t.Errorf("unitDraw(%v).Int64N(%d) = %d, want %d", c.u, c.n, got, c.want)
		}
	}
	if got := backoffDelay(time.Second, 10*time.Second, 0.2, 3, 0.5); got != 4*time.Second {
		t.Errorf("the middle draw: %v, want 4s", got)
	}
}
