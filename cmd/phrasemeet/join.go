package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
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
// stuck relay cannot keep a user waiting after Ctrl-C. A second signal
// cuts the wait short.
const leaveTimeout = 10 * time.Second

// slotPoll is how often join asks the default profile's Discoverer which
// slot its announcement holds, to report it. The question is a map lookup
// under a lock: no request.
const slotPoll = 250 * time.Millisecond

// slotHolder is what the default profile's Discoverer tells about where an
// announcement is. The can-sync profile exposes no such thing (its claim
// is only logged), so join reports no slot for it.
type slotHolder interface {
	Slot(id string) int
}

func runJoin(ctx context.Context, e env, args []string) error {
	if err := refusePassphraseArg(args); err != nil {
		return err
	}
	fs := newFlagSet("join", "[--profile default|can-sync] [--relay URL|none]... [--dht [--bootstrap HOST:PORT]...] "+
		"[--id ID] [--secret-file PATH] [--addr ADDR]... [--json] [--app NAME] [--namespace NAME] [--passphrase-file PATH]", e.stdout)
	var relays listFlag
	fs.Var(&relays, "relay", relayHelp)
	dhtf := addDHTFlags(fs, "meet over the Mainline DHT too (--relay none: the DHT alone)")
	id := fs.String("id", "", "the ID to announce (default: the hex of --secret-file's public key, else of a new key for this run; valid for both profiles). "+
		"An ID of 64 hex digits is an Ed25519 public key: the default profile signs entries about it, so it needs --secret-file; can-sync wants such an ID")
	secretFile := fs.String("secret-file", "", "the Ed25519 key whose public key, in hex, is the ID (a file phrasemeet keygen writes); "+
		"the default profile signs our entries with it, so no other member can announce or bury this ID. The can-sync profile's wire carries no signature: there it only sets the ID")
	var addrs repeatedFlag
	fs.Var(&addrs, "addr", "an address `ADDR` to announce, in order of preference (repeatable; default profile only)")
	asJSON := fs.Bool("json", false, `print one JSON object per line, and no status lines on standard error (warnings and errors still go there): `+
		`{"event":"announced"|"claimed"|"found"|"updated"|"lost"|"left","id","addrs","source","time"}; "claimed" (default profile) adds "slot", `+
		`"announced" adds "profile" and (default profile) the group's "fingerprint"`)
	grpf := addGroupFlags(fs)
	passf := addPassphraseFlags(fs)
	scan := fs.Duration("scan-interval", 0, "steady scan period (default: the profile's); for experiments and tests, every real group should keep the default")
	republish := fs.Duration("republish-interval", 0, "how often our entry is rewritten (default: the profile's); for experiments and tests")
	logLevel := fs.String("log-level", "warn", "library log level on standard error: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", logFormatHelp)
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
	logger, err := newLogger(e.stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	rec := discovery.Record{ID: *id, Addrs: addrs}
	if pr == profileCanSync && len(addrs) > 0 {
		return usageError("--addr: the can-sync profile's wire carries only the ID, so it cannot announce addresses")
	}
	for _, a := range addrs {
		if strings.TrimSpace(a) == "" {
			return usageError("--addr must not be empty: peers could not use an empty address")
		}
	}
	var signer discovery.Signer
	if rec.ID, signer, err = joinIdentity(rec.ID, *secretFile, pr); err != nil {
		return err
	}
	if pr == profileCanSync && *id != "" {
		if rec.ID, err = canSyncID(rec.ID); err != nil {
			return err
		}
	}
	if _, err := networkURLs(e, relays, dhtf); err != nil {
		return err
	}

	pass, err := passf.read(ctx, e)
	if err != nil {
		return err
	}
	defer clear(pass)
	if err := checkPassphrase(pr, pass); err != nil {
		return err
	}
	opts := []slotdiscovery.Option{slotdiscovery.WithLogger(logger), slotdiscovery.WithIDSchemes(idSchemes()...)}
	if signer != nil {
		opts = append(opts, slotdiscovery.WithSigner(signer))
	}
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
		// A typo in the passphrase joins another group, silently empty:
		// reading fingerprints to each other is how people notice.
		if !*asJSON {
			fmt.Fprintf(e.stderr, "group fingerprint %s (the others should see the same; if not, the passphrase, --app or --namespace differs)\n", group.Fingerprint())
		}
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
	// Close is deferred for the early returns; the leave below closes it
	// itself, and a second signal must not wait for it here.
	closeOnReturn := true
	defer func() {
		if closeOnReturn {
			ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
			defer cancel()
			d.Close(ctx)
		}
	}()

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
	out := newEventPrinter(e.stdout, e.stderr, *asJSON)
	fingerprint := ""
	if group != nil {
		fingerprint = group.Fingerprint()
	}
	out.announced(rec, pr, fingerprint)

	var slotTick <-chan time.Time
	holder, _ := d.(slotHolder)
	if holder != nil {
		t := time.NewTicker(slotPoll)
		defer t.Stop()
		slotTick = t.C
	}
	shownSlot := -1
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("the discoverer stopped")
			}
			out.event(ev)
		case <-slotTick:
			// Reported when first known and again only if the claim
			// moves: a status, not a heartbeat.
			if s := holder.Slot(rec.ID); s >= 0 && s != shownSlot {
				shownSlot = s
				out.claimed(rec, s)
			}
		case <-ctx.Done():
			break loop
		}
	}

	// The first SIGINT or SIGTERM asked to leave cleanly; a second one,
	// while the leave waits on a slow relay, means now, as in most
	// command-line tools. main's NotifyContext has fired and swallows
	// further signals, so join watches for them itself.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	left := make(chan error, 1)
	go func() {
		lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		err := ann.Leave(lctx)
		d.Close(lctx)
		left <- err
	}()
	select {
	case err := <-left:
		if err != nil {
			// Not a failure of the command: we did stop announcing, and
			// the others will see us Lost once our entry ages out.
			fmt.Fprintf(e.stderr, "phrasemeet join: warning: leave not confirmed: %s\n", oneLine(err.Error()))
		}
	case <-again:
		closeOnReturn = false
		return errors.New("interrupted again: stopped without finishing the leave; the others see this peer lost once its entry ages out")
	}
	out.left(rec.ID)
	return nil
}

// idSchemes are the IDs that are keys for join and slots: Ed25519 keys in
// hex, and libp2p peer IDs, as the libp2p adapter judges them, so every
// program of the project in one group ignores the same forgeries.
func idSchemes() []discovery.IDScheme { return libp2padapter.IDSchemes() }

// joinIdentity returns the ID join announces and what signs entries about
// it in the default profile: the key in secretFile, whose public key in
// hex is the ID (id, if given, must be it, in either case); else a new
// key for this run, when no ID is given; else nothing, for an ID that is
// not a key. An ID that is a key without its private key is refused in
// the default profile: it would refuse to announce it, and readers would
// ignore an unsigned entry about it.
func joinIdentity(id, secretFile string, pr profile) (string, discovery.Signer, error) {
	var priv ed25519.PrivateKey
	switch {
	case secretFile != "":
		k, err := loadIDKey(secretFile)
		if err != nil {
			return "", nil, err
		}
		priv = k
	case id == "":
		_, k, err := ed25519.GenerateKey(nil)
		if err != nil {
			return "", nil, err
		}
		priv = k
	case pr == profileDefault && discovery.SchemeFor(idSchemes(), id) != nil:
		return "", nil, usageError("--id %s is a public key, and the default profile signs entries about keys: "+
			"give its private key with --secret-file, or announce an ID that is not a key", printable(id))
	default:
		return id, nil, nil
	}
	own := hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	if id == "" {
		id = own
	} else if !strings.EqualFold(id, own) {
		return "", nil, usageError("--id is not the public key of --secret-file (%s)", own)
	}
	return id, discovery.Ed25519Signer(priv), nil
}

// loadIDKey reads a key file as keygen writes it. Anything but a regular
// file is refused before it is opened: opening a FIFO would block until
// someone writes to it, and no signal would end the wait.
func loadIDKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, usageError("--secret-file %s is not a regular file", printable(path))
	}
	sk, err := pkarrclient.LoadSecretKey(path)
	if err != nil {
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	defer sk.Destroy()
	seed := sk.Seed()
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
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
// line on standard output, status lines on standard error (none with
// --json, whose stream has them as events). Only the join loop calls it,
// so it needs no lock. Peers' IDs and addresses go through printable in
// plain lines; JSON escapes them itself.
type eventPrinter struct {
	w, status io.Writer
	json      *json.Encoder
}

func newEventPrinter(w, status io.Writer, asJSON bool) *eventPrinter {
	p := &eventPrinter{w: w, status: status}
	if asJSON {
		p.json = newJSONEncoder(w)
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
	// Fingerprint is the group's (Group.Fingerprint), in the
	// "announced" event of the default profile.
	Fingerprint string `json:"fingerprint,omitempty"`
	Meta        []byte `json:"meta,omitempty"`
	// Slot is the slot a "claimed" event's announcement holds.
	Slot *int `json:"slot,omitempty"`
	// Seen is the peer's newest signed time, where the profile has one.
	Seen *time.Time `json:"seen,omitempty"`
	Time time.Time  `json:"time"`
}

// announced reports our announcement; fingerprint is the group's (empty
// for can-sync, which has no group key), shown in text mode as a status
// line before this.
func (p *eventPrinter) announced(rec discovery.Record, pr profile, fingerprint string) {
	if p.json != nil {
		p.json.Encode(jsonEvent{Event: "announced", ID: rec.ID, Addrs: nonNil(rec.Addrs), Profile: string(pr), Fingerprint: fingerprint,
			Time: time.Now().UTC()})
		return
	}
	fmt.Fprintf(p.w, "announced %s%s (profile %s); Ctrl-C leaves\n", printable(rec.ID), bracketed(rec.Addrs), pr)
}

// claimed reports the slot our announcement holds: a status line on
// standard error, since the events on standard output are about others.
func (p *eventPrinter) claimed(rec discovery.Record, slot int) {
	if p.json != nil {
		p.json.Encode(jsonEvent{Event: "claimed", ID: rec.ID, Addrs: nonNil(rec.Addrs), Slot: &slot, Time: time.Now().UTC()})
		return
	}
	fmt.Fprintf(p.status, "announced in slot %d\n", slot)
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
	fmt.Fprintf(p.w, "%s %s%s via %s\n", ev.Type, printable(ev.Peer.ID), addrs, source)
}

func (p *eventPrinter) left(id string) {
	if p.json != nil {
		p.json.Encode(jsonEvent{Event: "left", ID: id, Addrs: []string{}, Time: time.Now().UTC()})
		return
	}
	fmt.Fprintf(p.w, "left %s\n", printable(id))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
