package libp2padapter_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// timeout bounds every wait in these tests. It is generous: the machines
// running them are small and shared, and -race slows libp2p down a lot.
const timeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// newHost starts a real libp2p host listening on loopback TCP only, and
// closes it when the test ends.
func newHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// newQUICHost starts a real libp2p host listening on loopback QUIC only.
// Tests where both ends may dial each other at the same instant through a
// dialer other than Connector (pubsub's) use it: two simultaneous TCP dials
// between listen ports reused for dialing can merge into one connection
// that neither handshake completes, and the swarm's dial backoff that
// follows outlasts the test. QUIC keeps the two attempts apart.
func newQUICHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// newAdapter returns an adapter for h that publishes loopback addresses
// (every host here is on loopback), closed when the test ends.
func newAdapter(t *testing.T, h host.Host, open libp2padapter.Opener, opts ...libp2padapter.Option) *libp2padapter.Adapter {
	t.Helper()
	a, err := libp2padapter.New(h, open, append([]libp2padapter.Option{libp2padapter.WithLoopback()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("closing the adapter: %v", err)
		}
	})
	return a
}

// subscribe returns the events of a's namespace ns, as a Connector would
// see them.
func subscribe(t *testing.T, ctx context.Context, a *libp2padapter.Adapter, ns string) <-chan discovery.Event {
	t.Helper()
	events, err := a.Subscriber(ns).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// awaitEvent returns the first event for which match is true.
func awaitEvent(t *testing.T, ctx context.Context, events <-chan discovery.Event, what string, match func(discovery.Event) bool) discovery.Event {
	t.Helper()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("waiting for %s: event stream closed", what)
			}
			if match(e) {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

func isEvent(typ discovery.EventType, id peer.ID) func(discovery.Event) bool {
	return func(e discovery.Event) bool { return e.Type == typ && e.Peer.ID == id.String() }
}

// collect reads a FindPeers channel to its end.
func collect(t *testing.T, ctx context.Context, ch <-chan peer.AddrInfo) []peer.AddrInfo {
	t.Helper()
	var out []peer.AddrInfo
	for {
		select {
		case p, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, p)
		case <-ctx.Done():
			t.Fatalf("reading FindPeers: %v", ctx.Err())
		}
	}
}

func ids(infos []peer.AddrInfo) []peer.ID {
	out := make([]peer.ID, len(infos))
	for i, p := range infos {
		out[i] = p.ID
	}
	return out
}

// connectedness returns a stream of h's connectedness changes; awaiting
// one is how tests learn that a connection was made without polling.
func connectedness(t *testing.T, h host.Host) <-chan any {
	t.Helper()
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub.Out()
}

// awaitConnected waits until h is connected to p, by h's event bus.
func awaitConnected(t *testing.T, ctx context.Context, h host.Host, events <-chan any, p peer.ID) {
	t.Helper()
	if h.Network().Connectedness(p) == network.Connected {
		return
	}
	for {
		select {
		case e := <-events:
			if c := e.(event.EvtPeerConnectednessChanged); c.Peer == p && c.Connectedness == network.Connected {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s never connected to %s: %v", h.ID(), p, ctx.Err())
		}
	}
}

// cheapKDF keeps tests fast; every member of a test group uses the same.
var cheapKDF = slotdiscovery.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// loopbackRelay serves the project's real relay, in memory and without
// rate limits, on 127.0.0.1 and returns its base URL.
func loopbackRelay(t *testing.T) string {
	t.Helper()
	store := pkarrrelay.NewMemoryStore(10_000)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test relay is not on loopback: %s", srv.URL)
	}
	return srv.URL
}

// relayClient returns a pkarr client of its own for one peer.
func relayClient(t *testing.T, url string) *pkarrclient.Client {
	t.Helper()
	r, err := pkarrclient.NewRelay(url, pkarrclient.RelayHTTPClient(&http.Client{Timeout: 5 * time.Second}),
		pkarrclient.RelayBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c, err := pkarrclient.NewClient([]pkarrclient.Backend{r})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testGroup(t *testing.T, passphrase string) *slotdiscovery.Group {
	t.Helper()
	g, err := slotdiscovery.DeriveGroup([]byte(passphrase), slotdiscovery.WithKDF(cheapKDF))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// fastSchedule shrinks the slot discoverer's periods so a test runs in
// seconds, in the defaults' proportions.
func fastSchedule() []slotdiscovery.Option {
	return []slotdiscovery.Option{
		slotdiscovery.WithScanInterval(200 * time.Millisecond),
		slotdiscovery.WithFastScan(50*time.Millisecond, time.Second),
		slotdiscovery.WithRepublishInterval(500 * time.Millisecond),
		slotdiscovery.WithStaleAfter(2 * time.Second),
		slotdiscovery.WithVerifyDelay(5*time.Millisecond, 30*time.Millisecond),
		slotdiscovery.WithGetBudget(200, 400, 50),
		slotdiscovery.WithPutBudget(100, 20),
	}
}
