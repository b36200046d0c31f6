package pkarrclient

import (
	"math"
	"testing"
	"time"
)

// A relay allowed long retries (a cap near the largest Duration, many
// retries) keeps doubling its wait up to the cap and stays there: the
// doubling never overflows into a zero or negative wait, which would
// retry at once, in a loop, against a relay that is failing.
func TestRelayBackoffNoOverflow(t *testing.T) {
	const top = time.Duration(math.MaxInt64)
	r, err := NewRelay("http://127.0.0.1:1", RelayBackoff(time.Second, top))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Second // before jitter
	for n := range 100 {
		d := r.backoff(n)
		if d < want/2 || d > want {
			t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
		}
		if want > top/2 {
			want = top
		} else {
			want *= 2
		}
	}
}
