// Package netdelay puts a peer's network between an HTTP client and a relay
// on loopback, for the simulation's check against the real relay and the
// mesh benchmark: a round-trip time on every exchange, and the peer's own
// address in X-Forwarded-For, so that a relay trusting loopback as its
// proxy applies its per-IP limits to each peer on its own. It refuses any
// host that is not loopback: test traffic never leaves the machine.
package netdelay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"time"
)

// Transport is one peer's network. Every exchange spends half of RTT (plus
// up to a fifth more, as jitter) before reaching the relay and the rest
// after; a zero RTT adds nothing.
type Transport struct {
	// RTT is the round-trip time added to every exchange.
	RTT time.Duration
	// ForwardedFor is the peer's address, sent in X-Forwarded-For.
	ForwardedFor string
	// Base carries the requests (http.DefaultTransport when nil).
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if a, err := netip.ParseAddr(req.URL.Hostname()); err != nil || !a.IsLoopback() {
		return nil, fmt.Errorf("netdelay: refusing %s: test traffic goes to loopback only", req.URL.Host)
	}
	d := t.RTT
	if d > 0 {
		d += rand.N(d/5 + 1)
	}
	ctx := req.Context()
	if err := Pause(ctx, d/2); err != nil {
		return nil, err
	}
	req = req.Clone(ctx) // a RoundTripper must not modify its request
	req.Header.Set("X-Forwarded-For", t.ForwardedFor)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if err := Pause(ctx, d-d/2); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// Pause waits d, or until ctx ends (then it returns ctx's error).
func Pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
