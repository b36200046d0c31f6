package mainline_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// The helpers below are what these tests used of package pkarrclient's
// own test helpers before the DHT backend moved here.

// testEpoch is a fixed packet timestamp (2025-01-01T00:00:00Z). Relays run
// on a fake clock stopped at that instant, so their future-timestamp check
// does not depend on the wall clock.
const testEpoch pkarrclient.Timestamp = 1_735_689_600_000_000

// newTestSecretKey is a fresh random key.
func newTestSecretKey(t testing.TB) *pkarrclient.SecretKey {
	t.Helper()
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// txtPacket signs a packet with one TXT record "_test" of the given TTL.
func txtPacket(t testing.TB, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, value string, ttl uint32) *pkarrclient.SignedPacket {
	t.Helper()
	p, err := pkarrclient.NewBuilder().TXT("_test", ttl, value).Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// txtOf is a packet's "_test" TXT values, or "<nil>".
func txtOf(p *pkarrclient.SignedPacket) string {
	if p == nil {
		return "<nil>"
	}
	return strings.Join(p.TXT("_test"), ",")
}

// relayServerOptions adjusts serveRelay; the zero value is a plain relay.
type relayServerOptions struct{}

// relayServer is a real relay (pkarrrelay) on a memory store, served on
// 127.0.0.1.
type relayServer struct {
	URL   string
	store *pkarrrelay.MemoryStore
	srv   *httptest.Server
}

// serveRelay starts a real relay with its rate limits disabled.
func serveRelay(t *testing.T, _ relayServerOptions) *relayServer {
	t.Helper()
	store := pkarrrelay.NewMemoryStore(100)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithClock(clockwork.NewFakeClockAt(time.UnixMicro(int64(testEpoch)))),
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &relayServer{URL: srv.URL, store: store, srv: srv}
}

// packet returns the packet the relay holds for key, or nil.
func (s *relayServer) packet(t *testing.T, key pkarrclient.PublicKey) *pkarrclient.SignedPacket {
	t.Helper()
	rec, err := s.store.Get(context.Background(), key)
	if errors.Is(err, pkarrrelay.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkarrclient.ParseRelayPayload(key, rec.Payload)
	if err != nil {
		t.Fatalf("the relay holds an invalid packet: %v", err)
	}
	return p
}

// newTestRelay returns a Relay for url whose HTTP client refuses to dial
// anything but loopback, with millisecond backoff.
func newTestRelay(t testing.TB, url string) *pkarrclient.Relay {
	t.Helper()
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
				t.Errorf("test tried to dial non-loopback address %s", addr)
				return nil, fmt.Errorf("test: refusing to dial %s", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	r, err := pkarrclient.NewRelay(url,
		pkarrclient.RelayHTTPClient(&http.Client{Transport: tr}),
		pkarrclient.RelayBackoff(time.Millisecond, 4*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newTestClient(t *testing.T, backends []pkarrclient.Backend, opts ...pkarrclient.ClientOption) *pkarrclient.Client {
	t.Helper()
	c, err := pkarrclient.NewClient(backends, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
