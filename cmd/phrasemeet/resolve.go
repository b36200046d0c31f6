package main

import (
	"context"
	"fmt"
	"io"

	"github.com/phrasemeet/discovery/pkarrclient"
)

func runResolve(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("resolve", "[--relay URL|none]... [--dht [--bootstrap HOST:PORT]...] [--most-recent] KEY", e.stdout)
	var relays listFlag
	fs.Var(&relays, "relay", relayHelp)
	dhtf := addDHTFlags(fs, "look in the Mainline DHT too, alongside the relays (--relay none: the DHT alone)")
	mostRecent := fs.Bool("most-recent", false, "ask every relay (and, with --dht, every DHT node on the way) and print the newest packet, not the first valid one")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := dhtf.check(fs); err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError("want exactly one KEY (z-base-32, pk:KEY or a URL), got %d arguments", len(rest))
	}
	key, err := pkarrclient.ParsePublicKey(rest[0])
	if err != nil {
		return usageError("%v", err)
	}
	backends, dht, err := clientBackends(e, relays, dhtf)
	if err != nil {
		return err
	}
	defer closeDHT(e, "resolve", dht)
	client, err := pkarrclient.NewClient(backends)
	if err != nil {
		return err
	}
	resolve := client.Resolve
	if *mostRecent {
		resolve = client.ResolveMostRecent
	}
	p, err := resolve(ctx, key, pkarrclient.NetworkOnly())
	if err != nil {
		return err
	}
	printPacket(e.stdout, p)
	return nil
}

// printPacket prints a packet as a zone-file fragment: its time as a
// comment, then each record in presentation form, one per line.
func printPacket(w io.Writer, p *pkarrclient.SignedPacket) {
	fmt.Fprintf(w, "; %s  time %s (%d)\n", p.PublicKey(), p.Timestamp(), uint64(p.Timestamp()))
	for _, rr := range p.Records() {
		fmt.Fprintln(w, rr.String())
	}
}
