package mainline_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
)

// Publish a record on the Mainline DHT and resolve it from another node.
// Here the "DHT" is one serving node on 127.0.0.1, the first node of a
// private network; with no WithBootstrap option a DHT joins the public
// network through DefaultBootstrap.
func ExampleNew() {
	node, err := mainline.New(
		mainline.WithListen("127.0.0.1:0"),
		mainline.WithServing(0),
		mainline.WithBootstrap(), // the first node: nobody to ask
	)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	// Clients are passive: they ask and never answer.
	newClient := func() *mainline.DHT {
		c, err := mainline.New(
			mainline.WithListen("127.0.0.1:0"),
			mainline.WithBootstrap(node.AddrPort().String()),
		)
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	publisher, resolver := newClient(), newClient()
	defer publisher.Close()
	defer resolver.Close()

	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	packet, err := pkarrclient.NewBuilder().TXT("_hello", 300, "world").Sign(sk)
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	receipt, err := publisher.Publish(ctx, packet)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stored on %d DHT node(s)\n", receipt.DHTNodes)

	got, err := resolver.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.TXT("_hello"))
	// Output:
	// stored on 1 DHT node(s)
	// [world]
}
