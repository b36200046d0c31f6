package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

func runPublish(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("publish", "--secret-file FILE [--relay URL]... --txt NAME=VALUE... [--record RR]... [--ttl S]", e.stderr)
	secretFile := fs.String("secret-file", "", "secret key file (from phrasemeet keygen)")
	var relays listFlag
	fs.Var(&relays, "relay", "relay base URL (repeatable; default $PHRASEMEET_RELAYS, else the public relays)")
	var txts, records repeatedFlag
	fs.Var(&txts, "txt", "TXT record NAME=VALUE, NAME relative to the key (repeatable)")
	fs.Var(&records, "record", `any record in zone-file form, e.g. "@ 300 IN A 192.0.2.1" (repeatable)`)
	ttl := fs.Uint("ttl", 300, "TTL in seconds of --txt records")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return usageError("unexpected argument %q", rest[0])
	case *secretFile == "":
		return usageError("--secret-file is required")
	case len(txts) == 0 && len(records) == 0:
		return usageError("nothing to publish: give --txt NAME=VALUE or --record RR")
	case *ttl > 1<<31-1:
		return usageError("--ttl %d is too large", *ttl)
	}
	b := pkarrclient.NewBuilder()
	for _, t := range txts {
		name, value, ok := strings.Cut(t, "=")
		if !ok || name == "" {
			return usageError("--txt %q: want NAME=VALUE", t)
		}
		b.TXT(name, uint32(*ttl), value)
	}
	for _, r := range records {
		b.Record(r)
	}
	sk, err := pkarrclient.LoadSecretKey(*secretFile)
	if err != nil {
		return err
	}
	defer sk.Destroy()
	p, err := b.Sign(sk)
	if err != nil {
		return err
	}
	client, err := newClient(relayURLs(relays, e))
	if err != nil {
		return err
	}
	res, err := client.Publish(ctx, p)
	if res != nil {
		for _, o := range res.Outcomes {
			status := "ok"
			if o.Err != nil {
				status = "failed: " + oneLine(o.Err.Error())
			}
			fmt.Fprintf(e.stderr, "  %s  %s (%s)\n", o.Backend, status, o.Duration.Round(time.Millisecond))
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "published %s at %s to %d of %d relays\n",
		p.PublicKey(), p.Timestamp(), res.Accepted, len(res.Outcomes))
	return nil
}
