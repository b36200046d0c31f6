package mdnsdiscovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/zeroconf/v2"

	"github.com/phrasemeet/discovery"
)

const (
	// mdnsDomain is the mDNS domain (RFC 6762 §3).
	mdnsDomain = "local."
	// servicePort fills the SRV record, which DNS-SD requires; the
	// record's Addrs say how to reach a peer, so the port is discard's.
	servicePort = 9
	// minQueryGap is the least time between two queries this Discoverer
	// starts, as RFC 6762 §5.2 asks of a querier repeating a question. A
	// kick sooner than that waits for it.
	minQueryGap = time.Second
	// maxPeers bounds the peers (and tombstones) remembered. Only a
	// holder of the group secret can make records that open, so this
	// guards against a misbehaving member, not against strangers.
	maxPeers = 4096
)

// Discoverer announces peers of one group on the LAN and finds the
// group's other members there, over mDNS and DNS-SD (zeroconf). It
// implements discovery.Discoverer. See the package documentation for the
// design.
type Discoverer struct {
	cfg     config
	service string
	sealer  *sealer
	origin  origin
	tracker *discovery.Tracker

	ctx     context.Context // ends at Close: stops browsing
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	kick    chan struct{}   // a browse restart, so our new registration is answered at once
	closing chan struct{}   // closed when the first Close has finished
	traffic zeroconf.IPType // IP versions to browse; owned by the browse loop once started

	mu      sync.Mutex
	closed  bool
	anns    map[string]*announcement   // running announcements, by ID
	ending  map[*announcement]struct{} // ended ones whose tombstone still lingers
	lastSeq map[string]uint64          // the last version number used per ID we announced
	peers   map[string]*peerState
	stats   Stats
}

var _ discovery.Discoverer = (*Discoverer)(nil)

// peerState is the newest version seen of another peer's record.
type peerState struct {
	seq      uint64
	time     time.Time // sealed time of that version
	kind     kind
	heard    time.Time // our clock when that version was last received
	reported bool      // the Tracker knows the peer as live
}

// Stats counts what a Discoverer has seen and done.
type Stats struct {
	// Received counts TXT record sets the browser delivered for the
	// group's service name.
	Received int
	// Rejected counts those that did not parse or did not open with the
	// group key: strangers, forgers and junk.
	Rejected int
	// Stale counts records that opened but were sealed too far from our
	// clock: old captures being replayed, or a peer's clock far off.
	Stale int
	// Replayed counts records older than a version already seen for
	// their ID.
	Replayed int
	// Own counts our own records heard back.
	Own int
	// Overflow counts records dropped because maxPeers IDs are known.
	Overflow int
	// Unproven counts records that opened but are about a public key
	// and carry no valid proof by it (see WithIDSchemes): a member's
	// forgeries.
	Unproven int
	// Sessions counts browse sessions started.
	Sessions int
	// Registrations counts zeroconf services registered: announcements,
	// refreshes, updates and tombstones.
	Registrations int
}

// New returns a Discoverer for the group whose secret is given: 32 bytes
// only the group's members know, such as
// (*slotdiscovery.Group).DeriveKey("mdnsdiscovery"). The mDNS service
// name and the key that seals records are derived from it. New starts
// browsing at once, so a subscriber learns the group before announcing.
//
// New fails with ErrNoInterface when no interface can carry mDNS.
func New(secret [32]byte, opts ...Option) (*Discoverer, error) {
	if secret == ([32]byte{}) {
		return nil, errors.New("mdnsdiscovery: the group secret is all zeros")
	}
	d, err := newDiscoverer(&secret, opts)
	if err != nil {
		return nil, err
	}
	ifaces, err := interfaces(d.cfg.ifaceNames)
	if err != nil {
		return nil, err
	}
	if d.traffic, err = ipTraffic(ifaces); err != nil {
		return nil, err
	}
	d.wg.Add(1)
	go d.browseLoop()
	return d, nil
}

// newDiscoverer builds a Discoverer without starting anything, for New
// and for tests that drive it by hand.
func newDiscoverer(secret *[32]byte, opts []Option) (*Discoverer, error) {
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	s, err := newSealer(secret)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Discoverer{
		cfg:     cfg,
		service: serviceFor(secret),
		sealer:  s,
		tracker: discovery.NewTracker(cfg.clock.Now),
		ctx:     ctx,
		cancel:  cancel,
		kick:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		anns:    make(map[string]*announcement),
		ending:  make(map[*announcement]struct{}),
		lastSeq: make(map[string]uint64),
		peers:   make(map[string]*peerState),
	}
	_, _ = rand.Read(d.origin[:]) // crypto/rand.Read never fails
	return d, nil
}

// Name implements discovery.Discoverer.
func (d *Discoverer) Name() string { return d.cfg.name }

// Service returns the DNS-SD service type the group uses on the LAN,
// such as "_pm-abcdefgh2345._udp", for tools like `avahi-browse`.
func (d *Discoverer) Service() string { return d.service }

// Subscribe implements discovery.Discoverer.
func (d *Discoverer) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	return d.tracker.Subscribe(ctx)
}

// Peers returns the peers known now, ordered by ID.
func (d *Discoverer) Peers() []discovery.Peer { return d.tracker.Peers() }

// Stats returns the counters so far.
func (d *Discoverer) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Close implements discovery.Discoverer: every announcement leaves as
// Leave would (its tombstone sent at once, then answering queries for the
// leave linger or until ctx ends), browsing stops, zeroconf's servers and
// browsers are shut down and every subscription closes. Nothing outlives
// Close here: the linger is the only wait, and ctx cuts it short. A second
// Close waits for the first, or for its own ctx, and returns nil.
func (d *Discoverer) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		select {
		case <-d.closing:
		case <-ctx.Done():
		}
		return nil
	}
	d.closed = true
	anns := make([]*announcement, 0, len(d.anns)+len(d.ending))
	for _, a := range d.anns {
		anns = append(anns, a)
	}
	for a := range d.ending {
		anns = append(anns, a)
	}
	d.mu.Unlock()
	// Announcements end first, while the browser still runs: the query it
	// sends on their kick is what makes their tombstones heard at once.
	var wg sync.WaitGroup
	for _, a := range anns {
		wg.Go(func() { a.end(ctx) })
	}
	wg.Wait()
	d.cancel()
	d.wg.Wait()
	d.tracker.Close()
	close(d.closing)
	return nil
}

func (d *Discoverer) now() time.Time { return d.cfg.clock.Now() }

// kickBrowse asks the browse loop for a fresh session soon. Its first
// query is answered by every registration of the group, ours included,
// and answers are multicast, so every browser on the LAN hears our new
// record, update or tombstone at once instead of after zeroconf's
// probing delay.
func (d *Discoverer) kickBrowse() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// register makes w a zeroconf service of the group under a fresh random
// instance and host name.
func (d *Discoverer) register(w wireRecord) (*zeroconf.Server, error) {
	if err := d.sign(&w); err != nil {
		return nil, err
	}
	txt, err := d.sealer.seal(&w)
	if err != nil {
		return nil, err
	}
	ifaces, err := interfaces(d.cfg.ifaceNames)
	if err != nil {
		return nil, err
	}
	name := randomLabel()
	srv, err := zeroconf.RegisterProxy(name, d.service, mdnsDomain, servicePort, name, hostIPs(ifaces), txt, ifaces, zeroconf.TTL(d.cfg.ttl()))
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.stats.Registrations++
	d.mu.Unlock()
	return srv, nil
}

// session is one zeroconf browse: its own sockets, its own first query.
type session struct {
	cancel  context.CancelFunc
	entries chan *zeroconf.ServiceEntry
	done    chan struct{} // closed when zeroconf.Browse has returned
	err     error         // Browse's error, set before done closes
}

func (d *Discoverer) startSession(traffic zeroconf.IPType) (*session, error) {
	ifaces, err := interfaces(d.cfg.ifaceNames)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(d.ctx)
	s := &session{cancel: cancel, entries: make(chan *zeroconf.ServiceEntry, 32), done: make(chan struct{})}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(s.done)
		s.err = zeroconf.Browse(ctx, d.service, mdnsDomain, s.entries,
			zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(traffic))
	}()
	d.mu.Lock()
	d.stats.Sessions++
	d.mu.Unlock()
	return s, nil
}

// stopSession ends s and waits for Browse to return, handling what it
// still delivers: zeroconf only notices its context between sends, so a
// session whose entries nobody reads never ends.
func (d *Discoverer) stopSession(s *session) {
	if s == nil {
		return
	}
	s.cancel()
	for {
		select {
		case e, ok := <-s.entries:
			if !ok {
				s.entries = nil // closed: stop selecting it
				continue
			}
			d.handle(e)
		case <-s.done:
			return
		}
	}
}

// nextTraffic is the IP versions to try after a browse failed with t:
// zeroconf's browser fails when either version cannot join, so both,
// then IPv4 alone, then IPv6 alone.
func nextTraffic(t zeroconf.IPType) zeroconf.IPType {
	switch t {
	case zeroconf.IPv4AndIPv6:
		return zeroconf.IPv4
	case zeroconf.IPv4:
		return zeroconf.IPv6
	}
	return zeroconf.IPv4AndIPv6
}

// browseLoop keeps one browse session running, restarting it every stale
// period (jittered) and soon after a kick, and ages out quiet peers.
// Within a session zeroconf delivers each instance name once; every
// registration has a new name, so each refresh, update and tombstone is
// delivered as it is announced, and a restart's query gathers every live
// registration again.
func (d *Discoverer) browseLoop() {
	defer d.wg.Done()
	clock := d.cfg.clock
	var s *session
	defer func() { d.stopSession(s) }()
	var lastStart time.Time
	next := clock.Now()
	failures := 0
	timer := clock.NewTimer(0)
	defer timer.Stop()
	sweep := clock.NewTicker(d.cfg.sweepEvery())
	defer sweep.Stop()
	schedule := func(at time.Time) {
		next = at
		timer.Reset(max(at.Sub(clock.Now()), 0))
	}
	for {
		var entries <-chan *zeroconf.ServiceEntry
		var done <-chan struct{}
		if s != nil {
			entries, done = s.entries, s.done
		}
		select {
		case <-d.ctx.Done():
			return
		case e, ok := <-entries:
			if !ok {
				s.entries = nil
				continue
			}
			d.handle(e)
		case <-done:
			// Browse ended by itself: it could not open or join its
			// sockets. Try the other IP versions at once, then back off.
			d.cfg.logger.Warn("mdns browse failed", "err", s.err, "traffic", int(d.traffic))
			s.cancel()
			s = nil
			d.traffic = nextTraffic(d.traffic)
			failures++
			if failures%3 == 0 {
				schedule(clock.Now().Add(d.cfg.reannounce))
			} else {
				schedule(clock.Now())
			}
		case <-d.kick:
			at := lastStart.Add(minQueryGap)
			if now := clock.Now(); at.Before(now) {
				at = now
			}
			if at.Before(next) {
				schedule(at)
			}
		case <-timer.Chan():
			if s != nil {
				failures = 0 // it lasted its whole period
			}
			d.stopSession(s)
			s = nil
			var err error
			if s, err = d.startSession(d.traffic); err != nil {
				d.cfg.logger.Warn("mdns browse not started", "err", err)
				schedule(clock.Now().Add(d.cfg.reannounce))
				continue
			}
			lastStart = clock.Now()
			schedule(lastStart.Add(jitter(d.cfg.staleAfter, 0.1)))
		case <-sweep.Chan():
			d.sweep()
		}
	}
}

// handle opens what the browser delivered and folds it into what we
// know.
func (d *Discoverer) handle(e *zeroconf.ServiceEntry) {
	w, err := d.sealer.open(e.Text)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Received++
	if err != nil {
		d.stats.Rejected++
		d.cfg.logger.Debug("mdns record dropped", "instance", e.Instance, "err", err)
		return
	}
	if err := discovery.CheckProof(d.cfg.schemes, w.rec.ID, d.sealer.proofMessage(w.signed), w.proof); err != nil {
		d.stats.Unproven++
		d.cfg.logger.Debug("mdns record without a valid proof dropped", "id", w.rec.ID, "err", err)
		return
	}
	d.observeLocked(w, d.now())
}

// observeLocked folds one opened record into the peers' views and
// reports what changed.
func (d *Discoverer) observeLocked(w wireRecord, now time.Time) {
	id := w.rec.ID
	if _, mine := d.anns[id]; mine || w.origin == d.origin {
		d.stats.Own++
		return
	}
	if age := now.Sub(w.time); age > d.cfg.staleAfter+d.cfg.maxSkew || -age > d.cfg.maxSkew {
		d.stats.Stale++
		return
	}
	ps := d.peers[id]
	if ps == nil {
		if len(d.peers) >= maxPeers {
			d.stats.Overflow++
			return
		}
		ps = &peerState{}
		d.peers[id] = ps
	} else {
		switch c := compareVersion(w.seq, w.time, ps.seq, ps.time); {
		case c < 0:
			d.stats.Replayed++
			return
		case c == 0:
			// The same version again: an answer to a new session's query,
			// or the same packet on another interface or IP version. It
			// is evidence the peer is alive, and brings back a peer aged
			// out while we could not hear it.
			if ps.kind == kindLive {
				ps.heard = now
				if !ps.reported {
					ps.reported = true
					d.tracker.Upsert(d.peer(w))
				}
			}
			return
		}
	}
	ps.seq, ps.time, ps.kind, ps.heard = w.seq, w.time, w.kind, now
	if w.kind == kindLive {
		ps.reported = true
		d.tracker.Upsert(d.peer(w))
		return
	}
	if ps.reported {
		ps.reported = false
		d.tracker.Remove(id)
	}
}

func (d *Discoverer) peer(w wireRecord) discovery.Peer {
	return discovery.Peer{Record: w.rec.Clone(), Sources: []string{d.cfg.name}, Seen: w.time}
}

// sweep reports Lost every peer not heard from within the stale bound,
// or whose newest record is older than any record we would still
// accept, and forgets versions too old to matter: a record older than
// them is refused as stale anyway.
func (d *Discoverer) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	oldest := d.cfg.staleAfter + d.cfg.maxSkew
	for id, ps := range d.peers {
		if ps.reported && (now.Sub(ps.heard) > d.cfg.staleAfter || now.Sub(ps.time) > oldest) {
			ps.reported = false
			d.tracker.Remove(id)
		}
		if !ps.reported && now.Sub(ps.time) > oldest {
			delete(d.peers, id)
		}
	}
}

// nextSeqLocked returns a version number for id above every one used
// before: the clock in microseconds, or one more than the last if the
// clock has not moved past it.
func (d *Discoverer) nextSeqLocked(id string) uint64 {
	s := uint64(max(d.now().UnixMicro(), 0))
	if last := d.lastSeq[id]; s <= last {
		s = last + 1
	}
	d.lastSeq[id] = s
	return s
}

// errClosedf wraps ErrClosed with context.
func errClosedf(what string) error { return fmt.Errorf("%w: %s", discovery.ErrClosed, what) }
