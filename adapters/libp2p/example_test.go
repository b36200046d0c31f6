package libp2padapter_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/libp2p/go-libp2p"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// Two hosts meet through the adapter. A real program opens namespaces
// with passphrase.SlotOpener over its passphrase's group; the Memory here
// keeps the example in one process.
func ExampleNew() {
	mem := discovery.NewMemory()
	alice, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	// WithLoopback because these hosts listen on loopback only.
	a, err := libp2padapter.New(alice, libp2padapter.MemoryOpener(mem), libp2padapter.WithLoopback())
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := libp2padapter.New(bob, libp2padapter.MemoryOpener(mem), libp2padapter.WithLoopback())
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Alice's record lives until ctx ends: no need to advertise again.
	if _, err := a.Advertise(ctx, "floodsub:chat"); err != nil {
		log.Fatal(err)
	}
	peers, err := b.FindPeers(ctx, "floodsub:chat", coredisc.Limit(10))
	if err != nil {
		log.Fatal(err)
	}
	for p := range peers {
		fmt.Println("Bob found Alice:", p.ID == alice.ID())
		if err := bob.Connect(ctx, p); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("connected:", bob.Network().Connectedness(alice.ID()) == network.Connected)
	// Output:
	// Bob found Alice: true
	// connected: true
}
