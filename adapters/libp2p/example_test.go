package libp2padapter_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/libp2p/go-libp2p"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

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

// A member that is reachable from the internet serves a circuit relay for
// the group; one behind NAT reserves a slot on it and publishes the
// relayed address. Here both are on loopback, the first forced public,
// the second forced private.
func ExampleConnectivity() {
	mem := discovery.NewMemory()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := func(opts ...libp2padapter.ConnectivityOption) (host.Host, *libp2padapter.Connectivity, *libp2padapter.Adapter) {
		conn, err := libp2padapter.NewConnectivity(append(opts,
			libp2padapter.ListenAddrs(ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")))...)
		if err != nil {
			log.Fatal(err)
		}
		h, err := libp2p.New(conn.Options()...)
		if err != nil {
			log.Fatal(err)
		}
		a, err := libp2padapter.New(h, libp2padapter.MemoryOpener(mem), libp2padapter.WithLoopback())
		if err != nil {
			log.Fatal(err)
		}
		conn.Attach(a) // the group relay admits, and AutoRelay picks among, a's members
		if _, err := a.Advertise(ctx, "group"); err != nil {
			log.Fatal(err)
		}
		return h, conn, a
	}
	relay, relayConn, ra := start(libp2padapter.ReachabilityMode(libp2padapter.ReachabilityPublic))
	defer relay.Close()
	defer ra.Close()
	home, _, ha := start(libp2padapter.ReachabilityMode(libp2padapter.ReachabilityPrivate))
	defer home.Close()
	defer ha.Close()

	for !relayConn.AllowReserve(home.ID(), nil) {
		time.Sleep(10 * time.Millisecond) // until the relay's adapter has found home
	}
	fmt.Println("the group relay admits a member:", relayConn.AllowReserve(home.ID(), nil))
	fmt.Println("link between them before they connect:", libp2padapter.LinkTo(home.Network(), relay.ID()))
	// Output:
	// the group relay admits a member: true
	// link between them before they connect: not connected
}
