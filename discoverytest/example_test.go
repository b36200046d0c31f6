package discoverytest_test

// This file is what an implementation of discovery.Discoverer adds to its
// own tests to prove itself, here for the in-memory reference
// implementation: a MakeGroup that builds a group of fresh members, and
// one test function that hands it to Run. Run needs the *testing.T of a
// test function, so that part is TestConformance below, which go test runs
// like any other test; ExampleRun shows it and checks, with output, the
// first thing the suite asks of a MakeGroup's members.

import (
	"context"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/discoverytest"
)

// newMemoryGroup is the MakeGroup of discovery.Memory: n members of one
// space. An implementation over a network starts its server here (a relay
// on 127.0.0.1, say) and stops it with t.Cleanup; the suite closes the
// members.
func newMemoryGroup(t *testing.T, n int) []discovery.Discoverer {
	space := discovery.NewMemory()
	ds := make([]discovery.Discoverer, n)
	for i := range ds {
		ds[i] = space.Join(fmt.Sprintf("memory-%d", i))
	}
	return ds
}

// TestConformance runs every case of the suite, each as a subtest
// (go test -run 'TestConformance/LostOnLeave' runs one). A mechanism that
// notices peers only at its next scan raises the wait with WithTimeout.
func TestConformance(t *testing.T) {
	discoverytest.Run(t, newMemoryGroup, discoverytest.WithTimeout(10*time.Second))
}

// An implementation runs the suite from a test function:
//
//	func TestConformance(t *testing.T) {
//		discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
//			space := discovery.NewMemory()
//			ds := make([]discovery.Discoverer, n)
//			for i := range ds {
//				ds[i] = space.Join(fmt.Sprintf("memory-%d", i))
//			}
//			return ds
//		}, discoverytest.WithTimeout(10*time.Second))
//	}
//
// The first case, MutualDiscovery, asks no more than this: a member finds
// what another announces.
func ExampleRun() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	space := discovery.NewMemory()
	a, b := space.Join("memory-0"), space.Join("memory-1")
	defer a.Close(context.Background())
	defer b.Close(context.Background())

	if _, err := a.Announce(ctx, discovery.Record{ID: "a", Addrs: []string{"/ip4/192.0.2.1/tcp/4001"}}); err != nil {
		log.Fatal(err)
	}
	events, err := b.Subscribe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ev := <-events
	fmt.Println(ev.Type, ev.Peer.ID, ev.Peer.Addrs)
	// Output: found a [/ip4/192.0.2.1/tcp/4001]
}
