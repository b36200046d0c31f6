// Command mesh measures, side by side and in one run, how long peers that
// start together take to find each other and to connect into a full mesh:
// phrasemeet with the library's defaults, go-libp2p-kad-dht routing
// discovery on a local DHT, and phrasemeet's can-sync profile on its real
// schedule, all in this process on loopback with an injected round-trip
// time. It prints a Markdown report:
//
//	cd bench && go run ./mesh -n 2,8,20,50 -runs 5 -rtt 50ms -limits pkarr
//
// See ../README.md for what is measured and how.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/phrasemeet/discovery/bench/meshbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := meshbench.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "mesh:", err)
		os.Exit(1)
	}
}
