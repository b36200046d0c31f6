package netdelay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestTransport: an exchange costs at least the RTT and carries the
// peer's address in X-Forwarded-For; a host that is not loopback is
// refused before anything is sent.
func TestTransport(t *testing.T) {
	const rtt = 80 * time.Millisecond
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Forwarded-For")
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &Transport{RTT: rtt, ForwardedFor: "198.18.0.7"}}
	began := time.Now()
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(began); took < rtt {
		t.Errorf("the exchange took %v, want at least %v", took, rtt)
	}
	if ip := <-got; ip != "198.18.0.7" {
		t.Errorf("X-Forwarded-For %q, want 198.18.0.7", ip)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://192.0.2.1/x", nil)
	if _, err := (&Transport{}).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Errorf("a request to 192.0.2.1: %v, want refused", err)
	}
}

// TestPause: zero waits for nothing; an ended context ends the wait with
// its error.
func TestPause(t *testing.T) {
	if err := Pause(context.Background(), 0); err != nil {
		t.Errorf("Pause(0): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Pause(ctx, time.Hour); err != context.Canceled {
		t.Errorf("Pause with a cancelled context: %v, want context.Canceled", err)
	}
}
