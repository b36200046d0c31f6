package connectivity_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
)

// A member that is reachable from the internet serves a circuit relay for
// the group; one behind NAT reserves a slot on it and publishes the
// relayed address. Here both are on loopback, the first forced public,
// the second forced private.
func ExampleManager() {
	mem := discovery.NewMemory()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := func(opts ...connectivity.Option) (host.Host, *connectivity.Manager, *libp2padapter.Adapter) {
		conn, err := connectivity.New(append(opts,
			connectivity.WithListenAddrs(ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")))...)
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
	relay, relayConn, ra := start(connectivity.WithReachability(connectivity.ReachabilityPublic))
	defer relay.Close()
	defer ra.Close()
	home, _, ha := start(connectivity.WithReachability(connectivity.ReachabilityPrivate))
	defer home.Close()
	defer ha.Close()

	for !relayConn.AllowReserve(home.ID(), nil) {
		time.Sleep(10 * time.Millisecond) // until the relay's adapter has found home
	}
	fmt.Println("the group relay admits a member:", relayConn.AllowReserve(home.ID(), nil))
	fmt.Println("link between them before they connect:", connectivity.LinkTo(home.Network(), relay.ID()))
	// Output:
	// the group relay admits a member: true
	// link between them before they connect: not connected
}
