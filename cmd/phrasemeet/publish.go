package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
)

func runPublish(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("publish", "--secret-file FILE [--relay URL|none]... [--dht [--bootstrap HOST:PORT]...] --txt NAME=VALUE... [--record RR]... [--ttl S] [--json]", e.stdout)
	secretFile := fs.String("secret-file", "", "secret key file (from phrasemeet keygen)")
	var relays listFlag
	fs.Var(&relays, "relay", relayHelp)
	dhtf := addDHTFlags(fs, "publish to the Mainline DHT too, storing on the nodes closest to the key (--relay none: the DHT alone)")
	var txts, records repeatedFlag
	fs.Var(&txts, "txt", "TXT record `NAME=VALUE`, NAME relative to the key (repeatable)")
	fs.Var(&records, "record", "a resource record `RR` in zone-file form, e.g. \"@ 300 IN A 192.0.2.1\" (repeatable)")
	ttl := fs.Uint("ttl", 300, "TTL in seconds of --txt records")
	asJSON := fs.Bool("json", false, `print one JSON object, and no status lines on standard error: {"key","timestamp","time","accepted",`+
		`"outcomes":[{"backend","ok","duration_ms","dht_nodes","error","error_kind" (stale, too_large, rate_limited, unavailable, `+
		`rejected or failed)}]}; printed on failure too, with the error on standard error`)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := dhtf.check(fs); err != nil {
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
	backends, dht, err := clientBackends(e, relays, dhtf)
	if err != nil {
		return err
	}
	defer closeDHT(e, "publish", dht)
	client, err := pkarrclient.NewClient(backends)
	if err != nil {
		return err
	}
	res, err := client.Publish(ctx, p)
	if res != nil && *asJSON {
		if err := newJSONEncoder(e.stdout).Encode(publishJSON(p, res)); err != nil {
			return err
		}
	} else if res != nil {
		for _, o := range res.Outcomes {
			fmt.Fprintf(e.stderr, "  %s  %s (%s)\n", o.Backend, publishStatus(o, p), o.Duration.Round(time.Millisecond))
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, pkarrclient.ErrNotMostRecent):
			return fmt.Errorf("stale: a more recent packet for this key is already published (is this machine's clock behind?): %w", err)
		case errors.Is(err, pkarrclient.ErrPacketTooLarge):
			return fmt.Errorf("too large: DHT nodes refused the %d-byte DNS message: %w", len(p.DNS()), err)
		}
		return err
	}
	if !*asJSON {
		fmt.Fprintf(e.stdout, "published %s at %s %s\n", p.PublicKey(), p.Timestamp(), publishSummary(res.Outcomes))
	}
	return nil
}

// jsonPublish is publish --json's output; the field names are documented
// in the flag's help and README.
type jsonPublish struct {
	Key       string        `json:"key"`
	Timestamp uint64        `json:"timestamp"`
	Time      time.Time     `json:"time"`
	Accepted  int           `json:"accepted"`
	Outcomes  []jsonOutcome `json:"outcomes"`
}

// jsonOutcome is what one backend did with the packet. DHTNodes is how
// many DHT nodes stored it (the DHT's, or a relay's that reports it).
type jsonOutcome struct {
	Backend    string  `json:"backend"`
	OK         bool    `json:"ok"`
	DurationMS float64 `json:"duration_ms"`
	DHTNodes   int     `json:"dht_nodes,omitempty"`
	Error      string  `json:"error,omitempty"`
	ErrorKind  string  `json:"error_kind,omitempty"`
}

func publishJSON(p *pkarrclient.SignedPacket, res *pkarrclient.PublishResult) jsonPublish {
	out := jsonPublish{Key: p.PublicKey().String(), Timestamp: uint64(p.Timestamp()), Time: jsonTime(p.Timestamp().Time()),
		Accepted: res.Accepted, Outcomes: []jsonOutcome{}}
	for _, o := range res.Outcomes {
		jo := jsonOutcome{Backend: o.Backend, OK: o.Err == nil, DurationMS: ms(o.Duration), DHTNodes: o.Receipt.DHTNodes}
		if o.Err != nil {
			jo.Error, jo.ErrorKind = oneLine(o.Err.Error()), errorKind(o.Err)
		}
		out.Outcomes = append(out.Outcomes, jo)
	}
	return out
}

// errorKind names a backend's failure for scripts, by the pkarrclient
// sentinel it wraps.
func errorKind(err error) string {
	switch {
	case errors.Is(err, pkarrclient.ErrNotMostRecent):
		return "stale"
	case errors.Is(err, pkarrclient.ErrPacketTooLarge):
		return "too_large"
	case errors.Is(err, pkarrclient.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, pkarrclient.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, pkarrclient.ErrBadRequest):
		return "rejected"
	}
	return "failed"
}

// publishStatus tells what one backend did with the packet, on one line:
// how many DHT nodes stored it, and a failure's kind first when it is one a
// user acts on (stale, too large).
func publishStatus(o pkarrclient.Outcome, p *pkarrclient.SignedPacket) string {
	isDHT := o.Backend == mainline.BackendName
	if o.Err != nil {
		msg := oneLine(o.Err.Error())
		switch {
		case errors.Is(o.Err, pkarrclient.ErrNotMostRecent):
			msg = "stale, a more recent packet is stored: " + msg
		case errors.Is(o.Err, pkarrclient.ErrPacketTooLarge):
			msg = fmt.Sprintf("too large, nodes refused the %d-byte DNS message (stock anacrolix nodes take at most 996 bytes, BEP44 nodes 1000): %s",
				len(p.DNS()), msg)
		}
		return "failed: " + msg
	}
	switch {
	case isDHT:
		return "ok, stored on " + nodes(o.Receipt.DHTNodes)
	case o.Receipt.DHTNodes > 0:
		return "ok, the relay stored it on " + nodes(o.Receipt.DHTNodes)
	}
	return "ok"
}

// publishSummary ends the success line: "to 2 of 3 relays", "to the DHT:
// stored on 8 DHT nodes", or both ("to 2 of 3 relays and the DHT: ...").
func publishSummary(outcomes []pkarrclient.Outcome) string {
	relays, accepted := 0, 0
	var dht *pkarrclient.Outcome
	for i, o := range outcomes {
		if o.Backend == mainline.BackendName {
			dht = &outcomes[i]
			continue
		}
		relays++
		if o.Err == nil {
			accepted++
		}
	}
	var s string
	if relays > 0 {
		s = fmt.Sprintf("to %d of %d relays", accepted, relays)
	}
	switch {
	case dht == nil:
	case dht.Err != nil:
		s += "; not to the DHT (see above)"
	case relays > 0:
		s += " and the DHT: stored on " + nodes(dht.Receipt.DHTNodes)
	default:
		s = "to the DHT: stored on " + nodes(dht.Receipt.DHTNodes)
	}
	return s
}

// nodes is "1 DHT node" or "n DHT nodes".
func nodes(n int) string {
	if n == 1 {
		return "1 DHT node"
	}
	return fmt.Sprintf("%d DHT nodes", n)
}
