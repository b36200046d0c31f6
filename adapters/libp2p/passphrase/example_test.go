package passphrase_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"go.uber.org/fx"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/passphrase"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The real rendezvous: a passphrase, a group derived from it, and pkarr
// relays. The relay here runs in process on loopback, standing in for
// pkarrclient.DefaultRelays.
func ExampleSlotOpener() {
	store := pkarrrelay.NewMemoryStore(1000)
	defer store.Close()
	// Both peers share one IP here, so the relay's per-IP limits are off.
	handler, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0), pkarrrelay.WithReadRateLimit(rate.Inf, 0))
	if err != nil {
		log.Fatal(err)
	}
	relay := httptest.NewServer(handler)
	defer relay.Close()

	// Once per passphrase: the slow KDF. Every peer of the group derives
	// the same keys.
	group, err := slotdiscovery.DeriveGroup([]byte("correct horse battery staple"), slotdiscovery.WithApp("example-app"))
	if err != nil {
		log.Fatal(err)
	}
	newPeer := func() (host.Host, *libp2padapter.Adapter) {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			log.Fatal(err)
		}
		r, err := pkarrclient.NewRelay(relay.URL)
		if err != nil {
			log.Fatal(err)
		}
		client, err := pkarrclient.NewClient([]pkarrclient.Backend{r})
		if err != nil {
			log.Fatal(err)
		}
		// A first FindPeers on a namespace may wait up to 20 s for the
		// first scan to find someone (the default is 3 s).
		a, err := libp2padapter.New(h, passphrase.SlotOpener(h, client, group),
			libp2padapter.WithLoopback(), libp2padapter.WithFindWait(20*time.Second))
		if err != nil {
			log.Fatal(err)
		}
		return h, a
	}
	alice, a := newPeer()
	defer alice.Close()
	defer a.Close()
	bob, b := newPeer()
	defer bob.Close()
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Advertise(ctx, "files"); err != nil {
		log.Fatal(err)
	}
	// Bob's first FindPeers opens the namespace and waits for his scans
	// to find someone.
	for p := range must(b.FindPeers(ctx, "files")) {
		fmt.Println("Bob found Alice:", p.ID == alice.ID())
	}
	// Output:
	// Bob found Alice: true
}

// An fx application adds the module in one line; it needs a host.Host.
// Here two such applications connect to each other; tests and examples
// replace the relay rendezvous with a Memory.
func ExampleModule() {
	mem := discovery.NewMemory()
	newApp := func(h *host.Host) *fx.App {
		return fx.New(
			fx.NopLogger,
			fx.Provide(func(lc fx.Lifecycle) (host.Host, error) {
				h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
				if err == nil {
					lc.Append(fx.StopHook(h.Close))
				}
				return h, err
			}),
			passphrase.Module(passphrase.Config{
				Passphrase:    []byte("correct horse battery staple"),
				App:           "example-app",
				AutoConnect:   true,
				AllowLoopback: true,
			}),
			fx.Replace(libp2padapter.MemoryOpener(mem)), // tests and examples only
			fx.Populate(h),
		)
	}
	var alice, bob host.Host
	appA, appB := newApp(&alice), newApp(&bob)

	connected, err := alice.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		log.Fatal(err)
	}
	defer connected.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, app := range []*fx.App{appA, appB} {
		if err := app.Start(ctx); err != nil {
			log.Fatal(err)
		}
		defer app.Stop(context.Background())
	}
	for alice.Network().Connectedness(bob.ID()) != network.Connected {
		select {
		case <-connected.Out():
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
	fmt.Println("Alice and Bob are connected")
	// Output:
	// Alice and Bob are connected
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
