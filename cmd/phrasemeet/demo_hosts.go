package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/adapters/libp2p/passphrase"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The default profile's PUT budget in the demo: the default rate, with a
// burst of 4 rather than 2, so the leaves at the end (a tombstone each)
// need not wait seconds for the budget the claims spent.
const (
	demoPutRate  = 0.23
	demoPutBurst = 4
)

// resendAfter is how long the demo waits for every host to receive the
// message before sending it again: pubsub reports a peer's subscription a
// moment before it can send to that peer, and drops what is published to
// it in that moment.
const resendAfter = time.Second

// slotGrace is how long the demo waits, once every host has the message,
// for the hosts still without a confirmed slot: a default-profile claim
// is confirmed by a read-back within seconds. can-sync claims a slot once
// and republishes into it: two hosts that claimed the same slot at once
// overwrite each other there at every republish, a few milliseconds
// apart, so one of them may never be seen in it (can-sync's claim race,
// measured in BENCHMARKS.md). It gets three republish periods, then is
// reported as holding no slot.
func (d *demo) slotGrace() time.Duration {
	if d.cfg.profile == profileCanSync {
		return 3 * canSyncDemoRepublish
	}
	return 30 * time.Second
}

// demo is one run's state. Only the goroutine running run touches it;
// the hosts' goroutines report through notes.
type demo struct {
	cfg      demoConfig
	tl       *timeline
	relayURL string
	pass     []byte
	start    time.Time
	kdf      time.Duration
	group    *slotdiscovery.Group // default profile
	topic    string

	hosts []*demoHost
	book  *addrBook // can-sync profile: where hosts find each other's addresses
	notes chan demoNote
	stop  context.CancelFunc // ends every host's goroutines
	wg    sync.WaitGroup

	announced    time.Time // when the hosts started announcing
	meshAt       time.Time
	foundAllAt   time.Time       // when the last (finder, found) pair was reported
	waiting      bool            // the wait for discovery alone was reported
	found        map[[2]int]bool // (finder, found) pairs reported
	slots        map[int]int     // the slot each host announced in
	pairs        map[[2]int]bool // connected host pairs, lower number first
	sentAt       time.Time       // first publish, which latencies count from
	lastSent     time.Time
	delivered    map[int]bool
	deliveredAt  time.Time // when the last host got the message
	lastDelivery time.Duration
	noSlot       []int // hosts that held no slot when the demo ended
}

// demoHost is one libp2p host of the demo with its discovery stack.
type demoHost struct {
	n int // 1 to --peers
	h host.Host
	// connectivity built h and follows the adapter's members.
	connectivity *connectivity.Manager
	client       *pkarrclient.Client
	adapter      *libp2padapter.Adapter
	conn         *libp2padapter.Connector
	ps           *pubsub.PubSub
	topic        *pubsub.Topic
	sub          *pubsub.Subscription
	stopPS       context.CancelFunc

	mu     sync.Mutex
	holder slotHolder             // the default profile's discoverer, once opened
	cs     *slotdiscovery.CanSync // the can-sync profile's, once opened
}

// demoNote is what a host's goroutine reports to the demo's loop.
type demoNote struct {
	kind    string // announce, found, connected, failed, delivered
	host    int
	other   peer.ID
	slot    int
	via     string
	attempt int
	err     error
	retryIn time.Duration
	text    string
	link    connectivity.Link // connected: how, when the dial ended
	at      time.Time
}

func (d *demo) note(ctx context.Context, n demoNote) {
	n.at = time.Now()
	select {
	case d.notes <- n:
	case <-ctx.Done():
	}
}

// run starts the hosts, lets them meet and talk, and returns once every
// host received the message and every host's discovery reported every
// other host, or with the context's error.
func (d *demo) run(ctx context.Context) error {
	d.notes = make(chan demoNote, 1024)
	d.found, d.pairs, d.delivered = make(map[[2]int]bool), make(map[[2]int]bool), make(map[int]bool)
	d.slots = make(map[int]int)
	d.book = newAddrBook()
	if err := ctx.Err(); err != nil {
		return err // the time ran out during the KDF
	}
	hostsCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stop = stop
	for i := 1; i <= d.cfg.peers; i++ {
		h, err := d.newHost(hostsCtx, i)
		if err != nil {
			return err
		}
		d.hosts = append(d.hosts, h)
	}
	how := "the slot rendezvous with its default schedule"
	if d.cfg.profile == profileCanSync {
		how = fmt.Sprintf("can-sync's 8 slots, scanning every %v (can-sync: 15s), republishing every %v (can-sync: 60s); "+
			"its wire carries no addresses, so the hosts take them from an address book in this process", canSyncDemoScan, canSyncDemoRepublish)
	}
	d.tl.emit(demoEvent{Event: "announcing", Profile: string(d.cfg.profile),
		Line: fmt.Sprintf("the %d hosts announce themselves through the libp2p adapter: %s", d.cfg.peers, how)})
	d.announced = time.Now()
	for _, h := range d.hosts {
		// Kept alive by the adapter until hostsCtx ends.
		if _, err := h.adapter.Advertise(hostsCtx, demoNamespace); err != nil {
			return fmt.Errorf("host %d: advertising: %w", h.n, err)
		}
		d.wg.Add(1)
		go d.watchSlot(hostsCtx, h)
	}

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case n := <-d.notes:
			d.handle(n)
		case <-tick.C:
			d.checkMesh(time.Now())
		case <-ctx.Done():
			return ctx.Err()
		}
		if d.advance(ctx, time.Now()) {
			return nil
		}
	}
}

// advance takes the demo's next step once the mesh is up (the message,
// then the wait for the slots and for discovery) and says whether every
// stage has been seen. A full mesh does not end the demo: a pair is
// connected as soon as one of the two dialed the other, and the demo
// shows discovery, so it also waits until every host's discovery has
// reported every other host.
func (d *demo) advance(ctx context.Context, now time.Time) bool {
	switch {
	case d.meshAt.IsZero():
		return false
	case len(d.delivered) < d.cfg.peers-1:
		d.maybeSend(ctx)
		return false
	case len(d.slots) < d.cfg.peers && now.Sub(d.deliveredAt) <= d.slotGrace():
		return false
	case d.foundAllAt.IsZero():
		d.reportWaiting()
		return false
	}
	if len(d.slots) < d.cfg.peers {
		d.reportNoSlot()
	}
	return true
}

// newHost starts host i: a libp2p host on loopback, built with the
// connectivity.Manager (as the chat's is), its own pkarr client over the
// relay, the adapter, a connector dialing what the adapter finds, and
// gossipsub joined to the demo's topic.
func (d *demo) newHost(ctx context.Context, i int) (*demoHost, error) {
	copts := []connectivity.Option{connectivity.WithListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0"))}
	if d.cfg.relayed {
		// AutoRelay keeps only a relay's public addresses, so on loopback
		// there is no relayed address unless 127.0.0.1 counts as public.
		copts = append(copts, connectivity.WithPublicCIDRs(netip.MustParsePrefix("127.0.0.1/32")))
		if i == 1 {
			copts = append(copts, connectivity.WithReachability(connectivity.ReachabilityPublic))
		} else {
			copts = append(copts, connectivity.WithReachability(connectivity.ReachabilityPrivate), connectivity.WithGroupRelay(false),
				connectivity.WithConnectionGater(behindNAT{}))
		}
	}
	dc, err := connectivity.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("host %d: %w", i, err)
	}
	h, err := libp2p.New(dc.Options()...)
	if err != nil {
		return nil, fmt.Errorf("host %d: %w", i, err)
	}
	dh := &demoHost{n: i, h: h, connectivity: dc}
	// Connections count whoever made them: the connector, the other
	// host's, or AutoRelay, which connects to a relay it finds among the
	// members before the connector gets to it (and the connector reports
	// no dial to a host already connected).
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		link := connectivity.LinkDirect
		if connectivity.IsRelayed(c) {
			link = connectivity.LinkRelayed
		}
		d.note(ctx, demoNote{kind: "connected", host: i, other: c.RemotePeer(), link: link})
	}})
	var addrs []string
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String())
	}
	d.book.set(h.ID(), addrs)
	d.tl.emit(demoEvent{Event: "host", Peer: i, ID: h.ID().String(), Addrs: addrs,
		Line: fmt.Sprintf("host %d is %s on %s", i, h.ID(), joinAddrs(addrs))})

	if dh.client, err = pkarrclient.NewRelayClient([]string{d.relayURL}); err != nil {
		h.Close()
		return nil, err
	}
	if dh.adapter, err = libp2padapter.New(h, d.opener(dh), libp2padapter.WithLoopback(), libp2padapter.WithLogger(d.hostLog(dh))); err != nil {
		h.Close()
		return nil, err
	}
	dc.Attach(dh.adapter)
	var sub libp2padapter.Subscriber = dh.adapter.Subscriber(demoNamespace)
	if release, ok := d.cfg.holdDiscovery[i]; ok {
		sub = &heldSubscriber{Subscriber: sub, release: release, wg: &d.wg}
	}
	// Subscribed before anything is announced, so no discovery is missed.
	events, err := sub.Subscribe(ctx)
	if err != nil {
		dh.close()
		return nil, err
	}
	d.wg.Add(1)
	go d.watchFound(ctx, dh, events)
	dh.conn, err = libp2padapter.NewConnector(h, sub,
		libp2padapter.ConnectBackoff(250*time.Millisecond, 5*time.Second),
		libp2padapter.ConnectNotify(func(e libp2padapter.ConnectEvent) {
			kind, link := "connected", connectivity.LinkTo(h.Network(), e.Peer.ID)
			if e.Type == libp2padapter.Failed {
				kind = "failed"
			}
			d.note(ctx, demoNote{kind: kind, host: i, other: e.Peer.ID, attempt: e.Attempt, err: e.Err, retryIn: e.RetryIn, link: link})
		}))
	if err == nil {
		err = dh.conn.Start(ctx)
	}
	if err != nil {
		dh.close()
		return nil, err
	}

	// No pubsub.WithDiscovery here: the connector has made the
	// connections, and pubsub finds the topic's members among them. Flood
	// publishing sends the message to every member at once rather than
	// waiting for the gossip mesh to form.
	psCtx, stopPS := context.WithCancel(context.Background())
	dh.stopPS = stopPS
	if dh.ps, err = pubsub.NewGossipSub(psCtx, h, pubsub.WithFloodPublish(true)); err == nil {
		if dh.topic, err = dh.ps.Join(d.topic); err == nil {
			dh.sub, err = dh.topic.Subscribe()
		}
	}
	if err != nil {
		dh.close()
		return nil, fmt.Errorf("host %d: pubsub: %w", i, err)
	}
	d.wg.Add(1)
	go d.watchMessages(ctx, dh)
	return dh, nil
}

// opener opens the demo's namespace for host dh, as its profile does it,
// and keeps the discoverer to report the slot it claims.
func (d *demo) opener(dh *demoHost) libp2padapter.Opener {
	if d.cfg.profile == profileCanSync {
		return func(string) (discovery.Discoverer, error) {
			cs, err := slotdiscovery.NewCanSync(dh.client, d.pass, slotdiscovery.WithLogger(d.hostLog(dh)),
				slotdiscovery.WithScanInterval(canSyncDemoScan), slotdiscovery.WithRepublishInterval(canSyncDemoRepublish))
			if err != nil {
				return nil, err
			}
			dh.mu.Lock()
			dh.cs = cs
			dh.mu.Unlock()
			return &canSyncHosts{cs: cs, book: d.book}, nil
		}
	}
	open := passphrase.SlotOpener(dh.h, dh.client, d.group, slotdiscovery.WithPutBudget(demoPutRate, demoPutBurst), slotdiscovery.WithLogger(d.hostLog(dh)))
	return func(ns string) (discovery.Discoverer, error) {
		disc, err := open(ns)
		if err != nil {
			return nil, err
		}
		if sh, ok := disc.(slotHolder); ok {
			dh.mu.Lock()
			dh.holder = sh
			dh.mu.Unlock()
		}
		return disc, nil
	}
}

// watchFound reports the peers a host's discoverer finds.
func (d *demo) watchFound(ctx context.Context, dh *demoHost, events <-chan discovery.Event) {
	defer d.wg.Done()
	for e := range events {
		if e.Type != discovery.Found {
			continue
		}
		id, err := peer.Decode(e.Peer.ID)
		if err != nil {
			continue
		}
		via := "?"
		if len(e.Peer.Sources) > 0 {
			via = e.Peer.Sources[0]
		}
		d.note(ctx, demoNote{kind: "found", host: dh.n, other: id, via: via})
	}
}

// heldSubscriber holds back a host's discovery events until release
// closes, then passes them on: for tests, a host whose discovery is slow
// while its peers find and dial it.
type heldSubscriber struct {
	libp2padapter.Subscriber
	release <-chan struct{}
	wg      *sync.WaitGroup
}

func (s *heldSubscriber) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	in, err := s.Subscriber.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan discovery.Event)
	s.wg.Go(func() {
		defer close(out)
		var held []discovery.Event
	hold:
		for {
			select {
			case e, ok := <-in:
				if !ok {
					return
				}
				held = append(held, e)
			case <-s.release:
				break hold
			case <-ctx.Done():
				return
			}
		}
		for _, e := range held {
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
		for {
			select {
			case e, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	})
	return out, nil
}

// watchSlot reports the slot a host's announcement holds once it is
// confirmed: the default profile's discoverer says so after its
// read-back; a can-sync slot is found by reading the eight slots, as
// `phrasemeet slots` does.
func (d *demo) watchSlot(ctx context.Context, dh *demoHost) {
	defer d.wg.Done()
	self := dh.h.ID().String()
	csID, _ := canSyncIDOf(self)
	period := 20 * time.Millisecond
	if d.cfg.profile == profileCanSync {
		period = 200 * time.Millisecond // eight GETs a look
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		dh.mu.Lock()
		holder, cs := dh.holder, dh.cs
		dh.mu.Unlock()
		slot := -1
		switch {
		case holder != nil:
			slot = holder.Slot(self)
		case cs != nil:
			for i, k := range cs.SlotKeys() {
				if id, _, err := slotdiscovery.ReadCanSyncSlot(ctx, dh.client, k); err == nil && id == csID {
					slot = i
					break
				}
			}
		}
		if slot >= 0 {
			d.note(ctx, demoNote{kind: "announce", host: dh.n, slot: slot})
			return
		}
	}
}

// watchMessages reports the messages a host receives.
func (d *demo) watchMessages(ctx context.Context, dh *demoHost) {
	defer d.wg.Done()
	for {
		msg, err := dh.sub.Next(ctx)
		if err != nil {
			return
		}
		if msg.GetFrom() == dh.h.ID() {
			continue
		}
		d.note(ctx, demoNote{kind: "delivered", host: dh.n, other: msg.GetFrom(), text: string(msg.Data)})
	}
}

// handle turns a host's report into a timeline event.
func (d *demo) handle(n demoNote) {
	other := d.hostIndex(n.other)
	switch n.kind {
	case "announce":
		slot := n.slot
		line := fmt.Sprintf("host %d announced in slot %d (%s after starting to announce)", n.host, slot, seconds(n.at.Sub(d.announced)))
		if d.cfg.profile == profileCanSync {
			for other, s := range d.slots {
				if s == slot {
					// A can-sync slot holds one ID: this claim replaced
					// the other's, which will claim again when it
					// republishes.
					line += fmt.Sprintf(", overwriting host %d: a can-sync slot holds one ID", other)
				}
			}
		}
		d.slots[n.host] = slot
		d.tl.emit(demoEvent{Event: "announce", Peer: n.host, Slot: &slot, Line: line})
	case "found":
		if other == 0 || other == n.host || d.found[[2]int{n.host, other}] {
			return
		}
		d.found[[2]int{n.host, other}] = true
		d.tl.emit(demoEvent{Event: "discover", Peer: n.host, Other: other, Via: n.via,
			Line: fmt.Sprintf("host %d found host %d via %s", n.host, other, n.via)})
		d.checkFoundAll(n.at)
	case "failed":
		d.tl.emit(demoEvent{Event: "dial_failed", Peer: n.host, Other: other, Attempt: n.attempt, Error: n.err.Error(),
			Line: fmt.Sprintf("host %d could not dial host %d (attempt %d): %v; again in %s", n.host, other, n.attempt, n.err, seconds(n.retryIn))})
	case "connected":
		key := [2]int{min(n.host, other), max(n.host, other)}
		if other == 0 || d.pairs[key] {
			return
		}
		d.pairs[key] = true
		d.tl.emit(demoEvent{Event: "connect", Peer: n.host, Other: other, Attempt: n.attempt, Link: n.link.String(),
			Line: fmt.Sprintf("host %d connected to host %d, %s (%d of %d pairs)", n.host, other, n.link, len(d.pairs), d.wantPairs())})
		d.checkMesh(n.at)
	case "delivered":
		if d.sentAt.IsZero() || n.text != d.message() || d.delivered[n.host] {
			return
		}
		d.delivered[n.host] = true
		d.deliveredAt = n.at
		took := n.at.Sub(d.sentAt)
		d.lastDelivery = max(d.lastDelivery, took)
		d.tl.emit(demoEvent{Event: "deliver", Peer: n.host, Other: other, Duration: ms(took), Text: n.text,
			Line: fmt.Sprintf("host %d received %q from host %d (%s after it was sent)", n.host, n.text, other, seconds(took))})
	}
}

// checkMesh declares the full mesh, once, when every pair has connected
// and every pair is connected now: a connection reported may have closed
// since (one of two made at once), so the check is repeated (run calls it
// on its ticks too).
func (d *demo) checkMesh(at time.Time) {
	if !d.meshAt.IsZero() || len(d.pairs) < d.wantPairs() || d.connectedPairs() < d.wantPairs() {
		return
	}
	d.meshAt = at
	took := d.meshAt.Sub(d.announced)
	d.tl.emit(demoEvent{Event: "mesh", Peers: d.cfg.peers, Connections: len(d.pairs), Duration: ms(took),
		Line: fmt.Sprintf("full mesh: every one of the %d hosts is connected to every other, %s after they started announcing", d.cfg.peers, seconds(took))})
}

// wantFound is how many (finder, found) pairs everyone finding everyone
// takes.
func (d *demo) wantFound() int { return d.cfg.peers * (d.cfg.peers - 1) }

// notFound lists the (finder, found) pairs no discovery event has
// reported yet.
func (d *demo) notFound() [][2]int {
	var missing [][2]int
	for a := 1; a <= d.cfg.peers; a++ {
		for b := 1; b <= d.cfg.peers; b++ {
			if a != b && !d.found[[2]int{a, b}] {
				missing = append(missing, [2]int{a, b})
			}
		}
	}
	return missing
}

// describePairs names up to four (finder, found) pairs in words.
func describePairs(pairs [][2]int) string {
	var b strings.Builder
	for i, p := range pairs {
		if i == 4 {
			fmt.Fprintf(&b, " and %d more", len(pairs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "host %d has not found host %d", p[0], p[1])
	}
	return b.String()
}

// checkFoundAll declares, once, that everyone found everyone: every
// host's discovery has reported every other host.
func (d *demo) checkFoundAll(at time.Time) {
	if !d.foundAllAt.IsZero() || len(d.found) < d.wantFound() {
		return
	}
	d.foundAllAt = at
	took := at.Sub(d.announced)
	d.tl.emit(demoEvent{Event: "found_all", Peers: d.cfg.peers, Found: len(d.found), Duration: ms(took),
		Line: fmt.Sprintf("everyone found everyone: each of the %d hosts' discovery reported every other host (%d discoveries), %s after they started announcing",
			d.cfg.peers, len(d.found), seconds(took))})
}

// reportWaiting says, once, that the demo waits for discovery alone: the
// hosts are connected and talked, but some host's discovery has not
// reported some other host (they connected through the other's dial).
func (d *demo) reportWaiting() {
	if d.waiting {
		return
	}
	d.waiting = true
	missing := d.notFound()
	d.tl.emit(demoEvent{Event: "waiting", Found: len(d.found), NotFound: missing,
		Line: fmt.Sprintf("every host is connected and has the message; waiting for discovery (%d of %d discoveries): %s",
			len(d.found), d.wantFound(), describePairs(missing))})
}

// reportNoSlot says which hosts hold no confirmed slot at the end: they
// met the others (every host got the message), but a newcomer reading the
// slots now would not find them.
func (d *demo) reportNoSlot() {
	for _, h := range d.hosts {
		if _, ok := d.slots[h.n]; ok {
			continue
		}
		d.noSlot = append(d.noSlot, h.n)
		why := "its claim is not confirmed yet"
		if d.cfg.profile == profileCanSync {
			why = "it lost a claim race: a can-sync slot holds one ID, each host republishes into the slot it claimed once, and the last writer holds it"
		}
		d.tl.emit(demoEvent{Event: "no_slot", Peer: h.n,
			Line: fmt.Sprintf("host %d holds no slot %s after the message arrived: %s", h.n, seconds(d.slotGrace()), why)})
	}
}

func (d *demo) message() string { return "hello from host 1" }

// maybeSend publishes the message from host 1 once it knows every other
// host is subscribed, and again if some host has not received it after
// resendAfter.
func (d *demo) maybeSend(ctx context.Context) {
	sender := d.hosts[0]
	switch {
	case d.sentAt.IsZero():
		if len(sender.topic.ListPeers()) < d.cfg.peers-1 {
			return // subscriptions still on their way
		}
	case time.Since(d.lastSent) < resendAfter:
		return
	}
	again := !d.sentAt.IsZero()
	if err := sender.topic.Publish(ctx, []byte(d.message())); err != nil {
		return // ctx ended; run returns
	}
	d.lastSent = time.Now()
	if !again {
		d.sentAt = d.lastSent
		d.tl.emit(demoEvent{Event: "message", Peer: 1, Text: d.message(), Topic: d.topic,
			Line: fmt.Sprintf("host 1 publishes %q on topic %s (gossipsub, flood publish; the topic name comes from the passphrase's keys)", d.message(), d.topic)})
		return
	}
	// Each copy is a new message to pubsub; latencies still count from
	// the first.
	d.tl.emit(demoEvent{Event: "message", Peer: 1, Text: d.message(), Topic: d.topic,
		Line: fmt.Sprintf("host 1 publishes it again: %d of %d hosts have not received it", d.cfg.peers-1-len(d.delivered), d.cfg.peers-1)})
}

// close stops every host: the connectors, the adapters (each leaves, so
// the relay holds no stale entry), pubsub, the hosts.
func (d *demo) close() {
	if d.stop != nil {
		d.stop()
	}
	var wg sync.WaitGroup
	for _, h := range d.hosts {
		wg.Go(h.close)
	}
	wg.Wait()
	d.wg.Wait()
}

// close stops the host's parts, the adapter's leave first; a failure to
// close at the end of the demo changes nothing it showed.
func (dh *demoHost) close() {
	if dh.conn != nil {
		dh.conn.Close()
	}
	if dh.adapter != nil {
		dh.adapter.Close()
	}
	if dh.stopPS != nil {
		dh.stopPS()
	}
	dh.h.Close()
}

// behindNAT is the connection gater of a host that --relayed puts behind
// NAT: it accepts no inbound connection except through a relay, as a
// home router drops unsolicited packets. The demo's hosts speak TCP only,
// which go-libp2p gates before the handshake, so a dialer sees its dial
// fail.
type behindNAT struct{}

func (behindNAT) InterceptPeerDial(peer.ID) bool               { return true }
func (behindNAT) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (behindNAT) InterceptAccept(c network.ConnMultiaddrs) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
func (behindNAT) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (behindNAT) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func joinAddrs(addrs []string) string {
	if len(addrs) == 0 {
		return "(no address)"
	}
	s := addrs[0]
	for _, a := range addrs[1:] {
		s += " " + a
	}
	return s
}
