package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/zeebo/blake3"

	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The demo is the project's main job on one machine with no network: a
// relay in this process on 127.0.0.1, a random passphrase, N libp2p hosts
// that know only the passphrase and the relay's address. Each host
// announces itself through the libp2p adapter, finds the others, dials
// them, and one says hello over gossipsub; the timeline is printed as it
// happens, then a summary with the time until everyone found everyone
// (every host's discovery reported every other host) and the time to a
// full mesh (every pair connected, whoever dialed). The demo waits for
// both: a pair one host dialed is connected before the other host's
// discovery has found it, if it ever does.
//
// Every part is the real one: the relay is `phrasemeet relay`'s, the
// discovery is the slot rendezvous with its default schedule (or the
// can-sync profile), and the hosts connect over TCP on loopback. Only the
// KDF is shared: each host of a real group runs it once; here one run
// serves them all.

// demoNamespace is the libp2p namespace the demo's hosts advertise in.
const demoNamespace = "phrasemeet-demo"

// demoTopicPurpose names the key the demo's pubsub topic comes from.
const demoTopicPurpose = "demo-chat-topic"

// canSyncDemoSchedule shortens can-sync's scan (15 s) and republish
// (60 s) periods so its demo ends in seconds: can-sync meets at its
// first scan after the claims, and a claim lost in a race shows up only
// at the next republish.
const (
	canSyncDemoScan      = time.Second
	canSyncDemoRepublish = 3 * time.Second
)

// demoConfig is one run of the demo.
type demoConfig struct {
	peers   int
	profile profile
	json    bool
	timeout time.Duration
	listen  string // the relay's address
	// relayed has hosts 2 to N behave as if behind NAT, meeting through
	// host 1's group relay.
	relayed bool
	// passphrase is the group's; nil picks a random one. Tests set it to
	// check it is never printed.
	passphrase []byte
	// logger gets the log of the demo's relay and of its hosts' discovery
	// (--log-level, --log-format); nil logs nothing.
	logger *slog.Logger
	// holdDiscovery, for tests, holds back the discovery events of the
	// hosts it names (what their connector dials and what the demo
	// reports) until the host's channel closes: a host whose discovery is
	// slow while its peers find and dial it.
	holdDiscovery map[int]<-chan struct{}
}

func runDemo(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("demo", "[--peers N] [--profile default|can-sync] [--relayed] [--json] [--timeout D] [--log-level LEVEL] [--log-format text|json]", e.stdout)
	var cfg demoConfig
	fs.IntVar(&cfg.peers, "peers", 3, "how many libp2p hosts meet (2 to 32)")
	prof := fs.String("profile", string(profileDefault), "rendezvous profile: default (sealed entries, Argon2id keys) or can-sync (can-sync's own wire, with a shortened schedule)")
	fs.BoolVar(&cfg.json, "json", false, `print one JSON object per event: {"event","t_ms",...}. `+
		`Event "found_all": every host's discovery has reported every other host; "mesh": every pair of hosts is connected; `+
		`"waiting": only discovery is missing. The last, "summary", holds found_all (true or false) and found_all_ms, `+
		`found and not_found (the [host, other] discoveries missing), full_mesh and mesh_ms (duration_ms too), `+
		`connections, delivered, kdf_ms, no_slot; times in milliseconds from the first announce`)
	fs.DurationVar(&cfg.timeout, "timeout", time.Minute, "give up if by then the hosts have not all found each other, connected and talked")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:0", "address for the demo's relay")
	fs.BoolVar(&cfg.relayed, "relayed", false, "hosts 2 to N act as if behind NAT (no inbound connection but through a relay): "+
		"host 1 is public and serves the group's circuit relay, the others reserve a slot on it, publish the relayed address "+
		"and talk through it (for the run, 127.0.0.1 counts as a public address, as --public-cidr 127.0.0.1/32 would make it)")
	logLevel := fs.String("log-level", "warn", "log level of the demo's relay and its hosts' discovery, on standard error: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", logFormatHelp)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q", rest[0])
	}
	if cfg.profile, err = parseProfile(*prof); err != nil {
		return err
	}
	if cfg.peers < 2 || cfg.peers > 32 {
		return usageError("--peers %d: want 2 to 32", cfg.peers)
	}
	if cfg.timeout <= 0 {
		return usageError("--timeout must be positive")
	}
	if cfg.logger, err = newLogger(e.stderr, *logLevel, *logFormat); err != nil {
		return err
	}
	return runDemoWith(ctx, e, cfg)
}

// randomPassphrase returns 130 random bits as 26 base32 letters and
// digits: well past what the default profile's check asks.
func randomPassphrase() ([]byte, error) {
	for {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		p := []byte(strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])))
		if slotdiscovery.CheckPassphrase(p) == nil {
			return p, nil
		}
	}
}

func runDemoWith(ctx context.Context, e env, cfg demoConfig) error {
	start := time.Now()
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	tl := newTimeline(e.stdout, cfg.json, start)
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	relayURL, stopRelay, err := startDemoRelay(ctx, cfg.listen, cfg.logger.With("relay", "in-process"))
	if err != nil {
		return err
	}
	defer stopRelay()
	tl.emit(demoEvent{Event: "relay", URL: relayURL,
		Line: fmt.Sprintf("relay serving %s (in this process: memory store, no rate limits, since every host comes from 127.0.0.1)", relayURL)})

	pass := cfg.passphrase
	if pass == nil {
		if pass, err = randomPassphrase(); err != nil {
			return err
		}
	}
	defer clear(pass)
	tl.emit(demoEvent{Event: "passphrase", Line: "the hosts share a random passphrase (not shown: it is the group's only secret) and the relay's URL, nothing else"})

	d := &demo{cfg: cfg, tl: tl, relayURL: relayURL, pass: pass, start: start}
	if err := d.keys(); err != nil {
		return err
	}
	err = d.run(ctx)
	d.close()
	if err == nil {
		d.summary()
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		d.summary()
		return fmt.Errorf("no full mesh, discovery and delivery within %v: %d of %d host pairs connected, %d of %d discoveries reported, message delivered to %d of %d",
			cfg.timeout, len(d.pairs), d.wantPairs(), len(d.found), d.wantFound(), len(d.delivered), cfg.peers-1)
	}
	if errors.Is(err, context.Canceled) {
		return errInterrupted
	}
	return err
}

// hostLog is the log of host dh's discovery: the demo's, each record
// naming the host.
func (d *demo) hostLog(dh *demoHost) *slog.Logger { return d.cfg.logger.With("host", dh.n) }

// startDemoRelay serves `phrasemeet relay`'s relay in this process. It has
// no rate limits: every host comes from 127.0.0.1, and the relay listens
// nowhere else.
func startDemoRelay(ctx context.Context, listen string, logger *slog.Logger) (url string, stop func(), err error) {
	f := relayFlags{
		listen:       listen,
		store:        "memory",
		basePath:     "/",
		maxPackets:   10_000,
		writeBurst:   pkarrrelay.DefaultWriteBurst,
		readBurst:    pkarrrelay.DefaultReadBurst,
		futureMargin: pkarrrelay.DefaultFutureMargin,
		version:      version(),
	}
	srv, store, err := f.build(logger)
	if err != nil {
		return "", nil, err
	}
	ln, err := srv.Listen(ctx, listen)
	if err != nil {
		store.Close()
		return "", nil, err
	}
	// The relay outlives the demo's deadline: the hosts' leaves at the
	// end still need it.
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(serveCtx, ln)
	}()
	return srv.URL(), func() {
		cancel()
		<-served
		store.Close()
	}, nil
}

// keys derives what the profile derives from the passphrase, timed: the
// Argon2id group of the default profile, or can-sync's plain BLAKE3 slot
// keys; and the pubsub topic.
func (d *demo) keys() error {
	if d.cfg.profile == profileCanSync {
		t0 := time.Now()
		for i := range slotdiscovery.CanSyncSlots {
			slotdiscovery.CanSyncSlotKey(d.pass, i).Destroy()
		}
		took := time.Since(t0)
		d.kdf = took
		d.tl.emit(demoEvent{Event: "kdf", Profile: string(profileCanSync), Duration: ms(took),
			Line: fmt.Sprintf("can-sync profile: no KDF, the %d slot keys are BLAKE3 hashes of the passphrase (%s), so a guess costs an attacker as little",
				slotdiscovery.CanSyncSlots, seconds(took))})
		var k [32]byte
		blake3.DeriveKey("phrasemeet 2026-11 demo chat topic v1", d.pass, k[:])
		d.topic = topicName(k)
		return nil
	}
	kdf := slotdiscovery.DefaultKDF()
	t0 := time.Now()
	g, err := slotdiscovery.DeriveGroup(d.pass, slotdiscovery.WithApp(slotdiscovery.DefaultApp))
	if err != nil {
		return err // never quotes the passphrase
	}
	d.kdf = time.Since(t0)
	d.group = g
	d.tl.emit(demoEvent{Event: "kdf", Profile: string(profileDefault), Duration: ms(d.kdf),
		Line: fmt.Sprintf("KDF: Argon2id t=%d m=%dMiB p=%d took %s; every key comes from it (each host of a real group runs it once; here they share one run)",
			kdf.Time, kdf.MemoryKiB/1024, kdf.Threads, seconds(d.kdf))})
	d.topic = topicName(g.DeriveKey(demoTopicPurpose))
	return nil
}

// topicName is the pubsub topic derived from a key: it names the group to
// its members without showing the passphrase.
func topicName(k [32]byte) string {
	return "phrasemeet-demo/" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(k[:10]))
}

func (d *demo) wantPairs() int { return d.cfg.peers * (d.cfg.peers - 1) / 2 }

// summary prints the last line: when everyone found everyone, when the
// mesh was full, and how far the message got; or what is missing.
func (d *demo) summary() {
	full, foundAll := !d.meshAt.IsZero(), !d.foundAllAt.IsZero()
	delivered := len(d.delivered)
	e := demoEvent{Event: "summary", Profile: string(d.cfg.profile), Peers: d.cfg.peers, Connections: len(d.pairs),
		FullMesh: &full, FoundAll: &foundAll, Found: len(d.found), Delivered: &delivered, KDF: ms(d.kdf)}
	parts := []string{fmt.Sprintf("summary: %d hosts", d.cfg.peers)}
	if foundAll {
		e.FoundAllMS = ms(d.foundAllAt.Sub(d.announced))
		parts = append(parts, fmt.Sprintf(": everyone found everyone (%d discoveries) %s after they started announcing",
			len(d.found), seconds(d.foundAllAt.Sub(d.announced))))
	} else {
		e.NotFound = d.notFound()
		parts = append(parts, fmt.Sprintf(": not everyone found everyone: %d of %d discoveries (%s)",
			len(d.found), d.wantFound(), describePairs(e.NotFound)))
	}
	if full {
		e.Duration = ms(d.meshAt.Sub(d.announced))
		e.MeshMS = e.Duration
		parts = append(parts, fmt.Sprintf("; full mesh (%d %s) %s after they started announcing, %s after the start (KDF %s)",
			len(d.pairs), plural(len(d.pairs), "connection", "connections"), seconds(d.meshAt.Sub(d.announced)),
			seconds(d.meshAt.Sub(d.start)), seconds(d.kdf)))
	} else {
		parts = append(parts, fmt.Sprintf("; no full mesh: %d of %d host pairs connected", len(d.pairs), d.wantPairs()))
	}
	parts = append(parts, fmt.Sprintf("; the message reached %d/%d hosts", delivered, d.cfg.peers-1))
	if delivered > 0 {
		parts = append(parts, " in "+seconds(d.lastDelivery))
	}
	if len(d.noSlot) > 0 {
		e.NoSlot = d.noSlot
		parts = append(parts, fmt.Sprintf("; %d %s no slot at the end", len(d.noSlot), plural(len(d.noSlot), "host holds", "hosts hold")))
	}
	e.Line = strings.Join(parts, "")
	d.tl.emit(e)
}

// connectedPairs counts the host pairs libp2p reports connected now.
func (d *demo) connectedPairs() int {
	n := 0
	for i, a := range d.hosts {
		for _, b := range d.hosts[i+1:] {
			if a.h.Network().Connectedness(b.h.ID()) == network.Connected {
				n++
			}
		}
	}
	return n
}

// hostIndex is the 1-based number of the demo's host with that ID, or 0.
func (d *demo) hostIndex(id peer.ID) int {
	for _, h := range d.hosts {
		if h.h.ID() == id {
			return h.n
		}
	}
	return 0
}

// plural picks the singular or the plural phrase for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
