package libp2padapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery"
)

// Opener opens the discoverer of one libp2p namespace. The Adapter calls it
// on a namespace's first use, and again on its first use after the adapter
// closed it for being idle (WithIdleGrace), while holding its own lock, so
// it should not block (constructing a discoverer is enough; announcing and
// scanning happen later). Each call must return a discoverer of its own:
// the Adapter takes ownership and closes it when the namespace goes idle or
// on Close.
type Opener func(namespace string) (discovery.Discoverer, error)

// Adapter implements go-libp2p's core/discovery.Discovery over phrasemeet
// discoverers, one per namespace. It is safe for concurrent use.
//
// Advertise keeps the host's record alive by itself until the caller's
// context ends; FindPeers answers from a cache each namespace's discoverer
// keeps up to date. The adapter follows the host's address changes and
// updates every running advertisement. A namespace nobody uses any more
// (no advertisement, no FindPeers waiting, no open subscription) is
// closed after a grace (WithIdleGrace), so pubsub topic churn does not
// leave a scanning discoverer behind per topic ever joined.
type Adapter struct {
	host host.Host
	open Opener
	cfg  config

	ctx    context.Context // ends when Close starts its last phase
	cancel context.CancelFunc
	kick   chan struct{} // the host's addresses changed

	mu     sync.Mutex
	closed bool
	sub    event.Subscription // address changes, from the first namespace on
	spaces map[string]*space
	// wg counts every goroutine the adapter starts. Add only under mu
	// while !closed (see track), so no Add races Close's Wait.
	wg sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// warnedNoAddrs is set once Advertise has warned of a host with no
	// address to publish, so pubsub's repeated calls warn only once.
	warnedNoAddrs atomic.Bool

	// members is closed and replaced whenever a namespace's cache
	// changes (MembersChanged).
	memMu   sync.Mutex
	members chan struct{}
}

var _ coredisc.Discovery = (*Adapter)(nil)

// space is one namespace: its discoverer, the peers it knows, and this
// host's advertisement in it.
type space struct {
	ns string
	d  discovery.Discoverer
	// onChange is told of every change to peers (the Adapter's
	// MembersChanged).
	onChange func()

	// Guarded by the Adapter's mu. users counts the uses in progress
	// (see lease); idleGen identifies the latest idle period, so a timer
	// armed for an earlier one, which a use has since interrupted, does
	// nothing.
	users     int
	idleGen   uint64
	idleTimer clockwork.Timer

	cacheMu sync.Mutex
	peers   map[string]cached // by record ID
	changed chan struct{}     // closed and replaced whenever peers changes

	// lock guards everything below. It is a channel so that waiting for it
	// can give up when a context ends: a Leave may hold it for seconds.
	lock chan struct{}
	// closed is set by Close; nothing is announced afterwards.
	closed bool
	ann    discovery.Announcement
	// want is the record last asked for; ann may carry fewer addresses
	// when the mechanism could not fit them all.
	want discovery.Record
	// holders are the contexts the advertisement lives for, keyed by
	// their Done channel: pubsub and util.Advertise repeat Advertise with
	// the same context, which must count once, and contexts derived
	// without a cancel share their parent's channel and lifetime.
	holders map[<-chan struct{}]func() bool
}

type cached struct {
	info peer.AddrInfo
	seen time.Time
}

// New returns an Adapter for h that opens each namespace's discoverer with
// open. Nothing runs until the first namespace opens: then the adapter
// subscribes to h's address changes, to update its advertisements. Close
// ends that and everything else.
//
// Starting nothing in New matters under fx: a constructor that fails after
// this one leaves the app without stop hooks to run, and a goroutine
// started here would never end.
func New(h host.Host, open Opener, opts ...Option) (*Adapter, error) {
	if h == nil || open == nil {
		return nil, fmt.Errorf("%w: nil host or opener", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	a := &Adapter{
		host:    h,
		open:    open,
		cfg:     cfg,
		kick:    make(chan struct{}, 1),
		spaces:  make(map[string]*space),
		members: make(chan struct{}),
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a, nil
}

// watchLocked subscribes to the host's address changes, once, and starts
// the goroutines that apply them. Before any namespace is open there is
// no advertisement to update: Advertise reads the addresses as they are.
func (a *Adapter) watchLocked() error {
	if a.sub != nil {
		return nil
	}
	sub, err := a.host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return fmt.Errorf("libp2padapter: subscribing to address changes: %w", err)
	}
	a.sub = sub
	a.wg.Add(2)
	go a.watchAddrs(sub)
	go a.applyAddrs()
	return nil
}

// track registers a goroutine about to start, unless the adapter is
// closed.
func (a *Adapter) track() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.wg.Add(1)
	return true
}

// watchAddrs turns address events into a kick for applyAddrs. The event
// bus blocks the host's address manager while a subscriber lags, and
// applying a change can wait behind a Leave, so the two are decoupled and
// changes coalesce.
func (a *Adapter) watchAddrs(sub event.Subscription) {
	defer a.wg.Done()
	for {
		select {
		case _, ok := <-sub.Out():
			if !ok {
				return
			}
			select {
			case a.kick <- struct{}{}:
			default:
			}
		case <-a.ctx.Done():
			return
		}
	}
}

// applyAddrs updates every running advertisement after an address change.
func (a *Adapter) applyAddrs() {
	defer a.wg.Done()
	for {
		select {
		case <-a.kick:
		case <-a.ctx.Done():
			return
		}
		a.mu.Lock()
		spaces := make([]*space, 0, len(a.spaces))
		for _, s := range a.spaces {
			spaces = append(spaces, s)
		}
		a.mu.Unlock()
		rec := a.record()
		for _, s := range spaces {
			if err := s.acquire(a.ctx); err != nil {
				return
			}
			if !s.closed && s.ann != nil {
				if err := a.refreshLocked(s, rec); err != nil {
					a.cfg.logger.Debug("updating advertisement", "namespace", s.ns, "err", err)
				}
			}
			s.release()
		}
	}
}

// record is what this host announces now.
func (a *Adapter) record() discovery.Record {
	return discovery.Record{ID: a.host.ID().String(), Addrs: a.cfg.filter.publish(a.host.Addrs())}
}

// lease returns the namespace's state, opening its discoverer on first use
// (or first use since it was closed for being idle), and counts one use of
// it until the matching unlease: a namespace in use is never closed as
// idle. Advertise holds a lease for each context its record lives for,
// FindPeers while it waits, a Subscriber's subscription until its context
// ends.
func (a *Adapter) lease(ns string) (*space, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	if s := a.spaces[ns]; s != nil {
		s.users++
		if s.idleTimer != nil {
			// A timer that already fired finds users > 0 and does
			// nothing; stopping it only frees it early.
			s.idleTimer.Stop()
			s.idleTimer = nil
		}
		return s, nil
	}
	if err := a.watchLocked(); err != nil {
		return nil, err
	}
	d, err := a.open(ns)
	if err != nil {
		return nil, &OpenError{Namespace: ns, Err: err}
	}
	if d == nil {
		return nil, &OpenError{Namespace: ns, Err: errors.New("opener returned no discoverer")}
	}
	events, err := d.Subscribe(a.ctx)
	if err != nil {
		_ = d.Close(a.ctx)
		return nil, &OpenError{Namespace: ns, Err: err}
	}
	s := &space{
		ns:       ns,
		d:        d,
		peers:    make(map[string]cached),
		changed:  make(chan struct{}),
		lock:     make(chan struct{}, 1),
		holders:  make(map[<-chan struct{}]func() bool),
		users:    1,
		onChange: a.membersChanged,
	}
	a.spaces[ns] = s
	a.wg.Add(1)
	go a.follow(s, events)
	a.cfg.logger.Debug("opened namespace", "namespace", ns, "discoverer", d.Name())
	return s, nil
}

// unlease ends one use of s; when it was the last, s closes after the idle
// grace unless a use begins meanwhile.
func (a *Adapter) unlease(s *space) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s.users--
	if s.users > 0 || a.closed || a.cfg.idle == 0 || a.spaces[s.ns] != s {
		return
	}
	s.idleGen++
	gen := s.idleGen
	s.idleTimer = a.cfg.clock.AfterFunc(a.cfg.idle, func() { a.reap(s, gen) })
}

// reap closes s if it is still idle since the use that armed this timer
// (gen) ended. The namespace's next use opens a fresh discoverer.
func (a *Adapter) reap(s *space, gen uint64) {
	a.mu.Lock()
	if a.closed || s.users > 0 || s.idleGen != gen || a.spaces[s.ns] != s {
		a.mu.Unlock()
		return
	}
	delete(a.spaces, s.ns)
	s.idleTimer = nil
	a.wg.Add(1) // under mu while !closed: Close waits for this shut
	a.mu.Unlock()
	a.membersChanged() // its peers are no longer known
	defer a.wg.Done()
	if err := a.shut(s); err != nil {
		a.cfg.logger.Debug("closing idle namespace", "namespace", s.ns, "err", err)
	}
	a.cfg.logger.Debug("closed idle namespace", "namespace", s.ns)
}

// follow keeps the namespace's cache in step with its discoverer, until the
// discoverer closes the subscription (at Close).
func (a *Adapter) follow(s *space, events <-chan discovery.Event) {
	defer a.wg.Done()
	self := a.host.ID()
	for e := range events {
		id := e.Peer.ID
		if e.Type == discovery.Lost {
			s.forget(id)
			a.cfg.logger.Debug("peer lost", "namespace", s.ns, "id", id)
			continue
		}
		info, ok := addrInfo(e.Peer.Record)
		if !ok || info.ID == self {
			// A record we cannot dial, or one claiming to be us, replaces
			// nothing useful: drop what we had under that ID.
			s.forget(id)
			a.cfg.logger.Debug("peer ignored", "namespace", s.ns, "id", id, "event", e.Type.String())
			continue
		}
		seen := e.Peer.Seen
		if seen.IsZero() {
			seen = e.Time
		}
		s.put(id, cached{info: info, seen: seen})
		a.cfg.logger.Debug("peer cached", "namespace", s.ns, "peer", info.ID.String(), "addrs", info.Addrs)
	}
}

func (s *space) put(id string, c cached) {
	s.cacheMu.Lock()
	s.peers[id] = c
	close(s.changed)
	s.changed = make(chan struct{})
	s.cacheMu.Unlock()
	s.onChange()
}

func (s *space) forget(id string) {
	s.cacheMu.Lock()
	if _, ok := s.peers[id]; !ok {
		s.cacheMu.Unlock()
		return
	}
	delete(s.peers, id)
	close(s.changed)
	s.changed = make(chan struct{})
	s.cacheMu.Unlock()
	s.onChange()
}

// IsMember implements connectivity.Members: id is in the cache of one of the open
// namespaces, that is, a record announcing id, signed by id's key (with
// passphrase.SlotOpener), was found through the rendezvous and has not been lost
// since. This host is never a member of its own adapter.
func (a *Adapter) IsMember(id peer.ID) bool {
	if id == "" {
		return false
	}
	key := id.String()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.spaces {
		s.cacheMu.Lock()
		_, ok := s.peers[key]
		s.cacheMu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// Members implements connectivity.Members: the peers of every open namespace, each
// once, its addresses merged from every namespace it was found in, in
// no particular order.
func (a *Adapter) Members() []peer.AddrInfo {
	byID := make(map[peer.ID]int)
	var out []peer.AddrInfo
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.spaces {
		s.cacheMu.Lock()
		for _, c := range s.peers {
			i, ok := byID[c.info.ID]
			if !ok {
				byID[c.info.ID] = len(out)
				out = append(out, peer.AddrInfo{ID: c.info.ID, Addrs: slices.Clone(c.info.Addrs)})
				continue
			}
			for _, m := range c.info.Addrs {
				if !slices.ContainsFunc(out[i].Addrs, m.Equal) {
					out[i].Addrs = append(out[i].Addrs, m)
				}
			}
		}
		s.cacheMu.Unlock()
	}
	return out
}

// MembersChanged implements connectivity.Members.
func (a *Adapter) MembersChanged() <-chan struct{} {
	a.memMu.Lock()
	defer a.memMu.Unlock()
	return a.members
}

func (a *Adapter) membersChanged() {
	a.memMu.Lock()
	close(a.members)
	a.members = make(chan struct{})
	a.memMu.Unlock()
}

// snapshot returns up to limit known peers (all if limit is 0), most
// recently seen first, and a channel closed at the next change.
func (s *space) snapshot(limit int) ([]peer.AddrInfo, <-chan struct{}) {
	s.cacheMu.Lock()
	all := make([]cached, 0, len(s.peers))
	for _, c := range s.peers {
		all = append(all, c)
	}
	changed := s.changed
	s.cacheMu.Unlock()
	slices.SortFunc(all, func(x, y cached) int {
		if c := y.seen.Compare(x.seen); c != 0 {
			return c
		}
		return cmp.Compare(x.info.ID, y.info.ID)
	})
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	out := make([]peer.AddrInfo, len(all))
	for i, c := range all {
		out[i] = peer.AddrInfo{ID: c.info.ID, Addrs: slices.Clone(c.info.Addrs)}
	}
	return out, changed
}

func (s *space) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *space) release() { <-s.lock }

// Advertise implements core/discovery.Advertiser. It announces the host's
// record in namespace ns and keeps it alive by itself until ctx ends or the
// adapter closes; it returns once the announcement has started.
//
// Calling it again for a namespace already advertised announces nothing
// new: it refreshes the record (if the host's addresses changed) and adds
// ctx to the contexts the record lives for, so the record stays while any
// of them is alive. pubsub and p2p/discovery/util.Advertise repeat the call
// with one context, which counts once; they stop the advertisement by
// cancelling it. A context that is never cancelled (context.Background)
// keeps the record until Close.
//
// A host that listens on loopback only, on an adapter without
// WithLoopback, has nothing others can dial: Advertise fails with an error
// matching ErrNoAddrs, and opens nothing. A host with no address yet is
// advertised (see ErrNoAddrs).
//
// The TTL returned is discovery.TTL's value bounded to [MinTTL, MaxTTL],
// or the adapter's default (WithTTL). It is only a hint for when to call
// again: nothing expires when it passes.
func (a *Adapter) Advertise(ctx context.Context, ns string, opts ...coredisc.Option) (time.Duration, error) {
	var o coredisc.Options
	if err := o.Apply(opts...); err != nil {
		return 0, err
	}
	ttl := a.cfg.ttl
	if o.Ttl != 0 {
		ttl = min(max(o.Ttl, MinTTL), MaxTTL)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := a.checkAddrs(ns); err != nil {
		return 0, err
	}
	s, err := a.lease(ns)
	if err != nil {
		return 0, err
	}
	// The lease passes to a new holder below; otherwise it ends here.
	held := false
	defer func() {
		if !held {
			a.unlease(s)
		}
	}()
	if err := s.acquire(ctx); err != nil {
		return 0, err
	}
	defer s.release()
	if s.closed {
		return 0, ErrClosed
	}
	rec := a.record()
	if s.ann != nil {
		if err := a.refreshLocked(s, rec); err != nil {
			return 0, fmt.Errorf("libp2padapter: advertising on %q: %w", ns, err)
		}
	}
	if s.ann == nil {
		ann, err := a.announceFitting(s, rec)
		if err != nil {
			return 0, fmt.Errorf("libp2padapter: advertising on %q: %w", ns, err)
		}
		s.ann, s.want = ann, rec
		a.cfg.logger.Debug("advertising", "namespace", ns, "addrs", ann.Record().Addrs)
	}
	key := ctx.Done()
	if _, ok := s.holders[key]; !ok {
		held = true
		if key == nil {
			s.holders[key] = func() bool { return true }
		} else {
			s.holders[key] = context.AfterFunc(ctx, func() { a.drop(s, key) })
		}
	}
	return ttl, nil
}

// checkAddrs decides what Advertise does for a host with no address left
// to publish. A host on loopback only, without WithLoopback, is a setup
// mistake that waiting does not mend, so it fails with ErrNoAddrs, and
// the fix in the message; it is checked before the namespace opens, so a
// refused Advertise leaves nothing running. Any other host may still gain
// addresses (a relay reservation, a listener coming up, addresses a
// custom filter admits later) and the advertisement follows the host's
// address changes, so it is advertised and the adapter warns once.
// pubsub and util.Advertise retry a failed Advertise, so a loopback-only
// host that later gains a relay address is advertised then.
func (a *Adapter) checkAddrs(ns string) error {
	raw := a.host.Addrs()
	if len(a.cfg.filter.publish(raw)) > 0 {
		return nil
	}
	if a.cfg.filter.loopbackOnly(raw) {
		return fmt.Errorf("libp2padapter: advertising on %q: %w: the host listens on loopback only (WithLoopback, or Config.AllowLoopback, publishes loopback addresses)", ns, ErrNoAddrs)
	}
	if a.warnedNoAddrs.CompareAndSwap(false, true) {
		a.cfg.logger.Warn("advertising a record without addresses until the host has some",
			"namespace", ns, "host_addrs", len(raw), "err", ErrNoAddrs)
	}
	return nil
}

// announceFitting announces rec, dropping addresses from the end (the least
// preferred) while the mechanism finds the record too large: a slot entry
// holds a few hundred bytes, and a host with WebTransport and WebRTC
// addresses on two IP versions has more.
func (a *Adapter) announceFitting(s *space, rec discovery.Record) (discovery.Announcement, error) {
	for {
		ann, err := s.d.Announce(a.ctx, rec)
		if err == nil || !errors.Is(err, discovery.ErrInvalidRecord) || len(rec.Addrs) == 0 {
			return ann, err
		}
		rec.Addrs = rec.Addrs[:len(rec.Addrs)-1]
		a.cfg.logger.Debug("record too large, dropping an address", "namespace", s.ns, "err", err)
	}
}

// refreshLocked brings the running announcement up to rec. An announcement
// that ended underneath us (its discoverer closed by someone else, say) is
// cleared, so Advertise announces afresh.
func (a *Adapter) refreshLocked(s *space, rec discovery.Record) error {
	if rec.Equal(s.want) {
		return nil
	}
	fit := rec.Clone()
	for {
		err := s.ann.Update(a.ctx, fit)
		switch {
		case err == nil:
			s.want = rec
			a.cfg.logger.Debug("advertisement updated", "namespace", s.ns, "addrs", fit.Addrs)
			return nil
		case errors.Is(err, discovery.ErrLeft):
			s.ann, s.want = nil, discovery.Record{}
			return nil
		case errors.Is(err, discovery.ErrInvalidRecord) && len(fit.Addrs) > 0:
			fit.Addrs = fit.Addrs[:len(fit.Addrs)-1]
		default:
			return err
		}
	}
}

// drop removes a holder whose context ended, and leaves when it was the
// last.
func (a *Adapter) drop(s *space, key <-chan struct{}) {
	if !a.track() {
		return // Close leaves for everyone.
	}
	defer a.wg.Done()
	if err := s.acquire(a.ctx); err != nil {
		return
	}
	defer s.release()
	if _, held := s.holders[key]; !held {
		return
	}
	delete(s.holders, key)
	// Runs as drop returns, before release: the namespace may go idle
	// only once the Leave below is done.
	defer a.unlease(s)
	a.cfg.logger.Debug("advertisement context ended", "namespace", s.ns, "holders", len(s.holders))
	if len(s.holders) > 0 || s.ann == nil {
		return
	}
	ann := s.ann
	s.ann, s.want = nil, discovery.Record{}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), leaveTimeout)
	defer cancel()
	if err := ann.Leave(ctx); err != nil {
		a.cfg.logger.Debug("leaving", "namespace", s.ns, "err", err)
	}
	a.cfg.logger.Debug("stopped advertising", "namespace", s.ns)
}

// FindPeers implements core/discovery.Discoverer. It answers from the
// namespace's cache and never touches the network: the discoverer under it
// keeps the cache current. Peers come most recently seen first, at most
// discovery.Limit of them (all when no limit is given); this host is never
// among them, nor is a record without a usable address or whose ID is not
// a peer ID as peer.ID.String spells it.
//
// On a namespace where no peer is known yet (typically the first call,
// which opens it) the channel stays open until a first peer is known, the
// find wait passes (WithFindWait) or ctx ends, so that first call is useful.
// Otherwise the channel is already filled and closed when FindPeers
// returns.
func (a *Adapter) FindPeers(ctx context.Context, ns string, opts ...coredisc.Option) (<-chan peer.AddrInfo, error) {
	var o coredisc.Options
	if err := o.Apply(opts...); err != nil {
		return nil, err
	}
	if o.Limit < 0 {
		return nil, fmt.Errorf("%w: negative limit %d", ErrInvalidOption, o.Limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := a.lease(ns)
	if err != nil {
		return nil, err
	}
	peers, changed := s.snapshot(o.Limit)
	if len(peers) > 0 || a.cfg.findWait == 0 {
		a.unlease(s)
		ch := make(chan peer.AddrInfo, len(peers))
		for _, p := range peers {
			ch <- p
		}
		close(ch)
		return ch, nil
	}
	ch := make(chan peer.AddrInfo)
	if !a.track() {
		a.unlease(s)
		close(ch)
		return ch, nil
	}
	go func() {
		defer a.wg.Done()
		defer close(ch)
		defer a.unlease(s)
		wait, cancel := context.WithTimeout(ctx, a.cfg.findWait)
		defer cancel()
		for len(peers) == 0 {
			select {
			case <-changed:
			case <-wait.Done():
				return
			case <-a.ctx.Done():
				return
			}
			peers, changed = s.snapshot(o.Limit)
		}
		for _, p := range peers {
			select {
			case ch <- p:
			case <-ctx.Done():
				return
			case <-a.ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// Subscriber is the part of a discovery.Discoverer a Connector needs.
type Subscriber interface {
	// Subscribe returns a stream of events, as discovery.Discoverer's does.
	Subscribe(ctx context.Context) (<-chan discovery.Event, error)
}

// Subscriber returns the event stream of namespace ns, opening its
// discoverer on the first Subscribe, for a Connector that should dial the
// peers found there. Events report raw records, this host excluded. The
// namespace counts as in use, and is never closed as idle, until the
// subscription's context ends.
func (a *Adapter) Subscriber(ns string) Subscriber { return nsSubscriber{a: a, ns: ns} }

type nsSubscriber struct {
	a  *Adapter
	ns string
}

func (n nsSubscriber) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	s, err := n.a.lease(n.ns)
	if err != nil {
		return nil, err
	}
	events, err := s.d.Subscribe(ctx)
	if err != nil {
		n.a.unlease(s)
		return nil, err
	}
	context.AfterFunc(ctx, func() { n.a.unlease(s) })
	return events, nil
}

// Close stops every advertisement (as Leave, each within a few seconds),
// closes every discoverer the opener returned, and waits for the adapter's
// goroutines. Channels from FindPeers still open are closed. It is
// idempotent: a second call returns what the first did. Advertise,
// FindPeers and Subscribe fail with ErrClosed afterwards.
func (a *Adapter) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		spaces := make([]*space, 0, len(a.spaces))
		for _, s := range a.spaces {
			if s.idleTimer != nil {
				s.idleTimer.Stop()
				s.idleTimer = nil
			}
			spaces = append(spaces, s)
		}
		sub := a.sub // set only while open
		a.mu.Unlock()
		errs := make([]error, len(spaces))
		var wg sync.WaitGroup
		for i, s := range spaces {
			wg.Go(func() { errs[i] = a.shut(s) })
		}
		wg.Wait()
		a.cancel()
		a.mu.Lock()
		clear(a.spaces) // no namespace is open: nobody is a member
		a.mu.Unlock()
		a.membersChanged()
		if sub != nil {
			errs = append(errs, sub.Close())
		}
		a.wg.Wait()
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// shut leaves the namespace and closes its discoverer.
func (a *Adapter) shut(s *space) error {
	// Every holder of the lock finishes within a bound (a Leave within
	// leaveTimeout), so waiting without a context cannot hang.
	_ = s.acquire(context.Background())
	s.closed = true
	for key, stop := range s.holders {
		stop()
		delete(s.holders, key)
	}
	var errs []error
	if s.ann != nil {
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		errs = append(errs, s.ann.Leave(ctx))
		cancel()
		s.ann = nil
	}
	s.release()
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := s.d.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("closing namespace %q: %w", s.ns, err))
	}
	return errors.Join(errs...)
}
