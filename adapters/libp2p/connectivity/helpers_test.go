package connectivity_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
)

// A libp2padapter.Adapter is what passphrase.Module attaches.
var _ connectivity.Members = (*libp2padapter.Adapter)(nil)

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

// newAdapter returns an adapter for h that publishes loopback addresses
// (every host here is on loopback), closed when the test ends.
func newAdapter(t *testing.T, h host.Host, open libp2padapter.Opener) *libp2padapter.Adapter {
	t.Helper()
	a, err := libp2padapter.New(h, open, libp2padapter.WithLoopback())
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
