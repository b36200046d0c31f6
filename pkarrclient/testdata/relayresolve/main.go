// Command relayresolve is the smallest program that resolves a pkarr key
// through relays only. It exists to be measured: TestRelayOnlyLinksNoDHT
// asserts that it links no Mainline DHT code, and its binary size and
// package count are the figures quoted for the relay-only footprint.
//
//	go list -deps ./pkarrclient/testdata/relayresolve
//	go build -o relayresolve ./pkarrclient/testdata/relayresolve
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: relayresolve KEY")
		os.Exit(2)
	}
	key, err := pkarrclient.ParsePublicKey(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	client, err := pkarrclient.NewRelayClient(pkarrclient.DefaultRelays())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := client.Resolve(ctx, key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(p.String())
}
