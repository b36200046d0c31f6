package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The join command is one peer of a passphrase group, in a terminal: it
// announces a record and prints what it discovers until interrupted, then
// leaves (a tombstone in the default profile, a cleared slot in can-sync)
// so the others see it go at their next scan rather than when its entry
// ages out.

// leaveTimeout bounds the leave after SIGINT or SIGTERM. The libraries
// bound it themselves (a few seconds); this is the backstop, so that a
// stuck relay cannot keep a user waiting after Ctrl-C.
const leaveTimeout = 10 * time.Second

func runJoin(ctx context.Context, e env, args []string) error {
	if err := refusePassphraseArg(args); err != nil {
		return err
	}
	fs := newFlagSet("join", "[--profile default|can-sync] [--relay URL|none]... [--dht [--bootstrap HOST:PORT]...] "+
		"[--id ID] [--addr ADDR]... [--json] [--app NAME] [--namespace NAME] [--passphrase-file PATH]", e.stderr)
	var relays listFlag
	fs.Var(&relays, "relay", `relay base URL (repeatable; default $PHRASEMEET_RELAYS, else the public relays; "none": no relay, the DHT alone)`)
	dhtf := addDHTFlags(fs, "meet over the Mainline DHT too (--relay none: the DHT alone)")
	id := fs.String("id", "", "the ID to announce (default: a new random 32-byte ID in hex, valid for both profiles; can-sync wants the hex of an Ed25519 public key)")
	var addrs repeatedFlag
	fs.Var(&addrs, "addr", "an address to announce, in order of preference (repeatable; default profile only)")
	asJSON := fs.Bool("json", false, `print one JSON object per line: {"event":"announced"|"found"|"updated"|"lost"|"left","id","addrs","source","time"}`)
	grpf := addGroupFlags(fs)
	passf := addPassphraseFlags(fs)
	scan := fs.Duration("scan-interval", 0, "steady scan period (default: the profile's, 15 s); for experiments and tests, every real group should keep the default")
	republish := fs.Duration("republish-interval", 0, "how often our entry is rewritten (default: the profile's, 60 s); for experiments and tests")
	logLevel := fs.String("log-level", "warn", "library log level on standard error: debug, info, warn or error")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArguments(rest); err != nil {
		return err
	}
	if err := dhtf.check(fs); err != nil {
		return err
	}
	pr, err := grpf.check(fs)
	if err != nil {
		return err
	}
	if *scan < 0 || *republish < 0 {
		return usageError("--scan-interval and --republish-interval must be positive")
	}
	logger, err := newLogger(e.stderr, *logLevel)
	if err != nil {
		return err
	}
	rec := discovery.Record{ID: *id, Addrs: addrs}
	if pr == profileCanSync && len(addrs) > 0 {
		return usageError("--addr: the can-sync profile's wire carries only the ID, so it cannot announce addresses")
	}
	if rec.ID == "" {
		if rec.ID, err = randomID(); err != nil {
			return err
		}
	} else if pr == profileCanSync {
		if rec.ID, err = canSyncID(rec.ID); err != nil {
			return err
		}
	}
	if _, err := networkURLs(e, relays, dhtf); err != nil {
		return err
	}

	pass, err := passf.read(ctx, e)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted")
		}
		return err
	}
	defer clear(pass)
	if err := checkPassphrase(pr, pass); err != nil {
		return err
	}
	opts := []slotdiscovery.Option{slotdiscovery.WithLogger(logger)}
	if *scan > 0 {
		opts = append(opts, slotdiscovery.WithScanInterval(*scan))
	}
	if *republish > 0 {
		opts = append(opts, slotdiscovery.WithRepublishInterval(*republish))
	}
	var group *slotdiscovery.Group
	if pr == profileDefault {
		// The KDF runs before the DHT socket opens: nothing is left to
		// close if it fails, and the status line comes first.
		if !*asJSON {
			fmt.Fprintln(e.stderr, kdfStatus())
		}
		if group, err = grpf.derive(pass); err != nil {
			return err
		}
		clear(pass)
	}

	backends, dht, err := clientBackends(e, relays, dhtf)
	if err != nil {
		return err
	}
	defer closeDHT(e, "join", dht)
	client, err := pkarrclient.NewClient(backends)
	if err != nil {
		return err
	}
	var d discovery.Discoverer
	if pr == profileCanSync {
		d, err = slotdiscovery.NewCanSync(client, pass, opts...)
		clear(pass) // NewCanSync keeps the slot keys, not the passphrase
	} else {
		d, err = slotdiscovery.New(client, group, opts...)
	}
	if err != nil {
		return err
	}
	defer d.Close()

	// Subscribe first so nothing found between the two calls is missed;
	// the events wait in the subscription until the loop below prints
	// them, after the "announced" line.
	subCtx, stopSub := context.WithCancel(context.Background())
	defer stopSub()
	events, err := d.Subscribe(subCtx)
	if err != nil {
		return err
	}
	// The announcement's context is not the command's: a signal must
	// lead to the explicit Leave below, not to whatever the end of the
	// context does.
	annCtx, stopAnn := context.WithCancel(context.Background())
	defer stopAnn()
	ann, err := d.Announce(annCtx, rec)
	if err != nil {
		if errors.Is(err, discovery.ErrInvalidRecord) {
			return usageError("cannot announce this --id and --addr: %s", strings.TrimPrefix(err.Error(), "discovery: "))
		}
		return err
	}
	out := newEventPrinter(e.stdout, *asJSON)
	out.announced(rec, pr)

loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("the discoverer stopped")
			}
			out.event(ev)
		case <-ctx.Done():
			break loop
		}
	}

	lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := ann.Leave(lctx); err != nil {
		// Not a failure of the command: we did stop announcing, and the
		// others will see us Lost once our entry ages out.
		fmt.Fprintf(e.stderr, "phrasemeet join: warning: leave not confirmed: %s\n", oneLine(err.Error()))
	}
	d.Close()
	out.left(rec.ID)
	return nil
}

// randomID returns a new random ID: the hex of a fresh Ed25519 public key,
// 32 bytes like an iroh endpoint ID. A key rather than 32 random bytes,
// because can-sync reads an ID that is not a curve point as an empty slot.
func randomID() (string, error) {
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		return "", err
	}
	defer sk.Destroy()
	return hex.EncodeToString(sk.PublicKey().Bytes()), nil
}

// canSyncID checks an ID for the can-sync wire, which carries the
// lowercase hex of an Ed25519 public key, and returns it in lowercase.
func canSyncID(id string) (string, error) {
	id = strings.ToLower(id)
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != pkarrclient.PublicKeySize {
		return "", usageError("--id: the can-sync profile wants %d hex digits (a 32-byte endpoint ID), got %d characters",
			2*pkarrclient.PublicKeySize, len(id))
	}
	if _, err := pkarrclient.PublicKeyFromBytes(b); err != nil {
		return "", usageError("--id: the can-sync profile wants an Ed25519 public key, and this is not one (can-sync would read it as an empty slot)")
	}
	return id, nil
}

// eventPrinter prints join's output: plain lines or one JSON object per
// line. Only the join loop calls it, so it needs no lock.
type eventPrinter struct {
	w    io.Writer
	json *json.Encoder
}

func newEventPrinter(w io.Writer, asJSON bool) *eventPrinter {
	p := &eventPrinter{w: w}
	if asJSON {
		p.json = json.NewEncoder(w)
	}
	return p
}

// jsonEvent is one line of join --json. Addrs is always an array, empty
// rather than null, so consumers need no special case.
type jsonEvent struct {
	Event   string   `json:"event"`
	ID      string   `json:"id"`
	Addrs   []string `json:"addrs"`
	Source  string   `json:"source,omitempty"`
	Profile string   `json:"profile,omitempty"`
	Meta    []byte   `json:"meta,omitempty"`
	// Seen is the peer's newest signed time, where the profile has one.
	Seen *time.Time `json:"seen,omitempty"`
	Time time.Time  `json:"time"`
}

func (p *eventPrinter) announced(rec discovery.Record, pr profile) {
	if p.json != nil {
		p.json.Encode(jsonEvent{Event: "announced", ID: rec.ID, Addrs: nonNil(rec.Addrs), Profile: string(pr), Time: time.Now().UTC()})
		return
	}
	fmt.Fprintf(p.w, "announced %s%s (profile %s); Ctrl-C leaves\n", rec.ID, bracketed(rec.Addrs), pr)
}

func (p *eventPrinter) event(ev discovery.Event) {
	source := strings.Join(ev.Peer.Sources, ",")
	if p.json != nil {
		je := jsonEvent{Event: ev.Type.String(), ID: ev.Peer.ID, Addrs: nonNil(ev.Peer.Addrs), Source: source,
			Meta: ev.Peer.Meta, Time: ev.Time.UTC()}
		if !ev.Peer.Seen.IsZero() {
			seen := ev.Peer.Seen.UTC()
			je.Seen = &seen
		}
		p.json.Encode(je)
		return
	}
	addrs := bracketed(ev.Peer.Addrs)
	if ev.Type == discovery.Lost {
		addrs = ""
	}
	fmt.Fprintf(p.w, "%s %s%s via %s\n", ev.Type, ev.Peer.ID, addrs, source)
}

func (p *eventPrinter) left(id string) {
	if p.json != nil {
		p.json.Encode(jsonEvent{Event: "left", ID: id, Addrs: []string{}, Time: time.Now().UTC()})
		return
	}
	fmt.Fprintf(p.w, "left %s\n", id)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
