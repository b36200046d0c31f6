package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/phrasemeet/discovery/pkarrclient"
)

func runResolve(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("resolve", "[--relay URL|none]... [--dht [--bootstrap HOST:PORT]...] [--most-recent] [--json] KEY\n\n"+
		"Prints the packet's time as a comment, then its records in zone-file form, one per line.\n"+
		"Exit status: 0 found; 1 other failures; 2 a wrong command line;\n"+
		"  3 not found: a relay (or the DHT) answered, and none has a packet for KEY;\n"+
		"  4 no relay answered (nor, with --dht, any DHT node): unreachable, failing, rate-limited or invalid; try later.", e.stdout)
	var relays listFlag
	fs.Var(&relays, "relay", relayHelp)
	dhtf := addDHTFlags(fs, "look in the Mainline DHT too, alongside the relays (--relay none: the DHT alone)")
	mostRecent := fs.Bool("most-recent", false, "ask every relay (and, with --dht, every DHT node on the way) and print the newest packet, not the first valid one")
	asJSON := fs.Bool("json", false, `print the packet as one JSON object: {"key","timestamp" (microseconds, the packet's seq),"time",`+
		`"records":[{"name","ttl","class","type","data" (zone-file form),"txt" (TXT only: the value, unescaped)}]}; errors still go to standard error`)
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
		relays := len(backends)
		if dht != nil {
			relays--
		}
		return resolveFailure(ctx, err, relays, dht != nil)
	}
	if *asJSON {
		return newJSONEncoder(e.stdout).Encode(packetJSON(p))
	}
	printPacket(e.stdout, p)
	return nil
}

// jsonPacket is resolve --json's output. Its field names are documented in
// the flag's help and README: scripts depend on them.
type jsonPacket struct {
	Key       string       `json:"key"`
	Timestamp uint64       `json:"timestamp"`
	Time      time.Time    `json:"time"`
	Records   []jsonRecord `json:"records"`
}

// jsonRecord is one record of a jsonPacket: its header, its data in
// zone-file form, and for TXT the value as the publisher gave it (the
// character-strings joined, as SignedPacket.TXT does).
type jsonRecord struct {
	Name  string  `json:"name"`
	TTL   uint32  `json:"ttl"`
	Class string  `json:"class"`
	Type  string  `json:"type"`
	Data  string  `json:"data"`
	TXT   *string `json:"txt,omitempty"`
}

func packetJSON(p *pkarrclient.SignedPacket) jsonPacket {
	out := jsonPacket{Key: p.PublicKey().String(), Timestamp: uint64(p.Timestamp()),
		Time: jsonTime(p.Timestamp().Time()), Records: []jsonRecord{}}
	for _, rr := range p.Records() {
		h := rr.Header()
		r := jsonRecord{Name: h.Name, TTL: h.Ttl, Class: dns.Class(h.Class).String(), Type: dns.Type(h.Rrtype).String(),
			Data: strings.TrimPrefix(rr.String(), h.String())}
		if v, ok := txtValue(rr); ok {
			r.TXT = &v
		}
		out.Records = append(out.Records, r)
	}
	return out
}

// txtValue is a TXT record's value: its character-strings, joined, as
// bytes. They are read from the record's wire form, where they are
// length-prefixed and unescaped, rather than by undoing the escapes of
// the presentation form.
func txtValue(rr dns.RR) (string, bool) {
	if _, ok := rr.(*dns.TXT); !ok {
		return "", false
	}
	buf := make([]byte, dns.Len(rr))
	end, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return "", false
	}
	rdata := buf[end-int(rr.Header().Rdlength) : end]
	var b strings.Builder
	for len(rdata) > 0 {
		n := int(rdata[0])
		if 1+n > len(rdata) {
			return "", false
		}
		b.Write(rdata[1 : 1+n])
		rdata = rdata[1+n:]
	}
	return b.String(), true
}

// resolve's exit statuses besides 0, 1 and 2 (usage), so that a script
// can tell "publish it first" from "try again later".
const (
	// exitNotFound: a relay (or the DHT) answered, and none has a packet
	// for the key.
	exitNotFound = 3
	// exitNoAnswer: no relay (nor, with --dht, any DHT node) gave an
	// answer: all were unreachable, failed, rate-limited the request or
	// sent something invalid.
	exitNoAnswer = 4
)

// resolveFailure gives a failed resolve its exit status. Only the
// Client's verdict counts (a *ResolveError: every backend has answered or
// given up), and it says ErrNotFound when at least one backend said it has
// no packet; an interrupted resolve is a plain failure.
func resolveFailure(ctx context.Context, err error, relays int, dht bool) error {
	var re *pkarrclient.ResolveError
	if ctx.Err() != nil || !errors.As(err, &re) {
		return err
	}
	if errors.Is(err, pkarrclient.ErrNotFound) {
		return &exitError{code: exitNotFound, err: fmt.Errorf("not found: %w", err)}
	}
	who := "no relay answered"
	switch {
	case dht && relays == 0:
		who = "no DHT node answered"
	case dht:
		who = "no relay or DHT node answered"
	}
	return &exitError{code: exitNoAnswer, err: fmt.Errorf("%s: %w", who, err)}
}

// printPacket prints a packet as a zone-file fragment: its time as a
// comment, then each record in presentation form, one per line.
func printPacket(w io.Writer, p *pkarrclient.SignedPacket) {
	fmt.Fprintf(w, "; %s  time %s (%d)\n", p.PublicKey(), p.Timestamp(), uint64(p.Timestamp()))
	for _, rr := range p.Records() {
		fmt.Fprintln(w, rr.String())
	}
}
