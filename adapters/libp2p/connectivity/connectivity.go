package connectivity

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"
)

// Reachability says whether a host takes itself to be reachable from the
// internet, which decides whether it looks for relays (private) or
// serves one (public).
type Reachability string

// The reachability modes.
const (
	// ReachabilityAuto finds out: a host whose own addresses are all
	// private (or loopback, or unroutable) knows at once that it is
	// private and looks for a relay; otherwise AutoNAT decides, asking
	// other members to dial it back: it is public as soon as AutoNAT v1
	// says so, or AutoNAT v2 confirms one of its public addresses
	// reachable (every member serves v2; v1 only while it is not known
	// to be private).
	ReachabilityAuto Reachability = "auto"
	// ReachabilityPrivate forces private: the host always looks for
	// relays and never serves one.
	ReachabilityPrivate Reachability = "private"
	// ReachabilityPublic forces public: the host serves the group relay
	// (unless WithGroupRelay(false)) and looks for none. For a host with a
	// public address that no AutoNAT server can confirm, such as the
	// first member of a group.
	ReachabilityPublic Reachability = "public"
)

// ParseReachability parses "auto", "private" or "public".
func ParseReachability(s string) (Reachability, error) {
	switch r := Reachability(s); r {
	case ReachabilityAuto, ReachabilityPrivate, ReachabilityPublic:
		return r, nil
	}
	return "", fmt.Errorf("%w: reachability %q: want auto, private or public", ErrInvalidOption, s)
}

// DefaultRelayRetryDelay is how soon, by default, a relay that refused a
// reservation (or could not be reached) is tried again. A group member's
// relay refuses a member it has not yet found through the rendezvous,
// which happens when the newcomer finds the relay first; the relay finds
// the newcomer at its next scan.
const DefaultRelayRetryDelay = 10 * time.Second

// DefaultRelayACLWait is how long, by default, the group relay waits for
// the rendezvous to find a peer that asks for a reservation or a circuit
// before refusing it.
const DefaultRelayACLWait = 2 * time.Second

// DefaultListenAddrs are where a host built with Manager.Options
// listens unless WithListenAddrs says otherwise: every interface, IPv4 and
// IPv6, TCP and QUIC, on ports the system picks.
func DefaultListenAddrs() []ma.Multiaddr {
	return []ma.Multiaddr{
		ma.StringCast("/ip4/0.0.0.0/tcp/0"),
		ma.StringCast("/ip4/0.0.0.0/udp/0/quic-v1"),
		ma.StringCast("/ip6/::/tcp/0"),
		ma.StringCast("/ip6/::/udp/0/quic-v1"),
	}
}

// DefaultGroupRelayResources are the group relay's limits by default: go-libp2p's
// default resources (128 reservations of an hour, 16 circuits per peer, 8
// reservations per IP), but no per-connection limit.
//
// go-libp2p's default per-connection limit (2 minutes or 128 KiB each
// way) cuts a relayed conversation that cannot become direct (behind a
// symmetric NAT), and go-libp2p marks every connection through a relay
// with a limit as limited (Stat().Limited): streams are opened on it only
// with network.WithAllowLimitedConn, which gossipsub does not use, so a
// pubsub chat over a limited relayed connection carries nothing at all.
// The group relay serves only the group's members (see Manager), so
// it relays their connections without a limit. A static relay run by
// someone else keeps its own limits; through one with limits, members
// that cannot connect directly can still hole punch, but not talk.
func DefaultGroupRelayResources() relay.Resources {
	r := relay.DefaultResources()
	r.Limit = nil
	return r
}

// Option configures a Manager. An invalid value makes
// New fail.
type Option func(*connConfig) error

type connConfig struct {
	static     []peer.AddrInfo
	groupRelay bool
	resources  relay.Resources
	reach      Reachability
	public     []netip.Prefix
	listen     []ma.Multiaddr
	retry      time.Duration
	grace      time.Duration
	clock      clockwork.Clock
	logger     *slog.Logger
	tracers    []holepunch.EventTracer
	punchWait  time.Duration
	gater      connmgr.ConnectionGater
}

// WithCircuitRelays adds static circuit relays (v2): always offered to
// AutoRelay, before the group's own. Each needs a peer ID and at least one
// address (ParseCircuitRelays reads them from multiaddrs).
func WithCircuitRelays(relays ...peer.AddrInfo) Option {
	return func(c *connConfig) error {
		for _, r := range relays {
			if err := r.ID.Validate(); err != nil {
				return fmt.Errorf("%w: circuit relay without a valid peer ID: %v", ErrInvalidOption, err)
			}
			if len(r.Addrs) == 0 {
				return fmt.Errorf("%w: circuit relay %s has no address", ErrInvalidOption, r.ID)
			}
			for _, a := range r.Addrs {
				if len(a) == 0 || isCircuit(a) {
					return fmt.Errorf("%w: circuit relay %s: address %q is not a direct one", ErrInvalidOption, r.ID, a)
				}
			}
			i := slices.IndexFunc(c.static, func(s peer.AddrInfo) bool { return s.ID == r.ID })
			if i < 0 {
				c.static = append(c.static, peer.AddrInfo{ID: r.ID, Addrs: slices.Clone(r.Addrs)})
				continue
			}
			for _, a := range r.Addrs {
				if !slices.ContainsFunc(c.static[i].Addrs, a.Equal) {
					c.static[i].Addrs = append(c.static[i].Addrs, a)
				}
			}
		}
		return nil
	}
}

// ParseCircuitRelays reads circuit relays from multiaddrs that end in
// /p2p/<relay's peer ID>, as `phrasemeet relay --circuit-listen` prints
// them; addresses of one relay are merged. A multiaddr without the peer
// ID, or through another relay (/p2p-circuit), is refused.
func ParseCircuitRelays(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		if len(s) > maxAddrLen {
			return nil, fmt.Errorf("%w: circuit relay address longer than %d bytes", ErrInvalidOption, maxAddrLen)
		}
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: circuit relay %q: %v", ErrInvalidOption, s, err)
		}
		if isCircuit(m) {
			return nil, fmt.Errorf("%w: circuit relay %q goes through another relay", ErrInvalidOption, s)
		}
		info, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return nil, fmt.Errorf("%w: circuit relay %q: want an address ending in /p2p/<peer ID>: %v", ErrInvalidOption, s, err)
		}
		if len(info.Addrs) == 0 {
			return nil, fmt.Errorf("%w: circuit relay %q has a peer ID but no address", ErrInvalidOption, s)
		}
		i := slices.IndexFunc(out, func(o peer.AddrInfo) bool { return o.ID == info.ID })
		if i < 0 {
			out = append(out, *info)
			continue
		}
		for _, a := range info.Addrs {
			if !slices.ContainsFunc(out[i].Addrs, a.Equal) {
				out[i].Addrs = append(out[i].Addrs, a)
			}
		}
	}
	return out, nil
}

// WithGroupRelay sets whether the host serves a circuit relay for the group
// while it is publicly reachable (default true). Only members found
// through the rendezvous may reserve a slot on it or open a circuit
// through it (see Manager.AllowReserve); its limits are
// DefaultGroupRelayResources unless WithGroupRelayResources says otherwise.
func WithGroupRelay(on bool) Option {
	return func(c *connConfig) error {
		c.groupRelay = on
		return nil
	}
}

// WithGroupRelayResources replaces the group relay's resources (default
// DefaultGroupRelayResources()). A non-nil Limit marks every connection through
// the relay as limited (see DefaultGroupRelayResources for what that costs).
func WithGroupRelayResources(r relay.Resources) Option {
	return func(c *connConfig) error {
		if r.MaxReservations <= 0 || r.MaxCircuits <= 0 || r.BufferSize <= 0 || r.ReservationTTL <= 0 ||
			r.MaxReservationsPerIP <= 0 || r.MaxReservationsPerASN <= 0 {
			return fmt.Errorf("%w: group relay resources must all be positive: %+v", ErrInvalidOption, r)
		}
		if r.Limit != nil && (r.Limit.Duration <= 0 || r.Limit.Data <= 0) {
			return fmt.Errorf("%w: group relay limit must be positive: %+v", ErrInvalidOption, *r.Limit)
		}
		c.resources = r
		if r.Limit != nil {
			l := *r.Limit
			c.resources.Limit = &l
		}
		return nil
	}
}

// WithReachability overrides how the host finds out whether it is
// reachable (default ReachabilityAuto).
func WithReachability(r Reachability) Option {
	return func(c *connConfig) error {
		if _, err := ParseReachability(string(r)); err != nil {
			return err
		}
		c.reach = r
		return nil
	}
}

// WithPublicCIDRs makes New call TreatAsPublic with these ranges,
// before any host exists. That changes process-wide state: read
// TreatAsPublic.
func WithPublicCIDRs(prefixes ...netip.Prefix) Option {
	return func(c *connConfig) error {
		for _, p := range prefixes {
			if !p.IsValid() {
				return fmt.Errorf("%w: invalid public CIDR %v", ErrInvalidOption, p)
			}
		}
		c.public = append(c.public, prefixes...)
		return nil
	}
}

// WithListenAddrs sets where the host listens (default DefaultListenAddrs).
// Only TCP and QUIC addresses can be listened on: those are the
// transports the host gets.
func WithListenAddrs(addrs ...ma.Multiaddr) Option {
	return func(c *connConfig) error {
		if len(addrs) == 0 {
			return fmt.Errorf("%w: no listen address", ErrInvalidOption)
		}
		for _, a := range addrs {
			if len(a) == 0 {
				return fmt.Errorf("%w: empty listen address", ErrInvalidOption)
			}
		}
		c.listen = slices.Clone(addrs)
		return nil
	}
}

// WithRelayRetryDelay sets how soon a relay that refused a reservation, or could
// not be reached, is tried again (default DefaultRelayRetryDelay).
func WithRelayRetryDelay(d time.Duration) Option {
	return func(c *connConfig) error {
		if d < time.Second {
			return fmt.Errorf("%w: relay retry %v under a second", ErrInvalidOption, d)
		}
		c.retry = d
		return nil
	}
}

// WithRelayACLWait sets how long the group relay waits for the rendezvous to
// find an unknown peer asking for a reservation or a circuit before
// refusing it (default DefaultRelayACLWait). Zero refuses at once.
func WithRelayACLWait(d time.Duration) Option {
	return func(c *connConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: negative ACL grace %v", ErrInvalidOption, d)
		}
		c.grace = d
		return nil
	}
}

// WithClock sets the clock that times relay retries and the ACL
// grace (default the real clock).
func WithClock(clk clockwork.Clock) Option {
	return func(c *connConfig) error {
		if clk == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.clock = clk
		return nil
	}
}

// WithLogger sets where the Manager logs, at debug level:
// peer IDs, addresses, reachability, relay and hole punching decisions.
// The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *connConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithHolePunchTracer passes every event of the host's hole punching
// service (a punch started, each attempt, its end) on to t as well. go-libp2p
// takes one tracer per host and the Manager is it; this is how a
// program that wants more than OnHolePunch's ends (the chat, to tell a
// link that is being punched from one that turned direct on its own) still
// hears them. t is called from the hole punching goroutines and should
// return quickly.
func WithHolePunchTracer(t holepunch.EventTracer) Option {
	return func(c *connConfig) error {
		if t == nil {
			return fmt.Errorf("%w: nil hole punch tracer", ErrInvalidOption)
		}
		c.tracers = append(c.tracers, t)
		return nil
	}
}

// Manager is what a phrasemeet host needs to reach members behind
// NATs: the go-libp2p options for its host (Options), the relays it may
// use, and the group relay it serves. It is the bridge between the host,
// built first, and the group's discovery, built on the host: give it
// the discovery's members with Attach once that exists.
//
//	conn, err := connectivity.New(connectivity.WithCircuitRelays(relays...))
//	h, err := libp2p.New(conn.Options()...)
//	a, err := libp2padapter.New(h, opener)
//	conn.Attach(a)
//
// Relays come from the static circuit relays given (WithCircuitRelays), and
// from the group: a member that is publicly reachable serves a circuit
// relay v2 for the group (WithGroupRelay, on by default), and members behind
// NAT find it among the members (an AutoRelay peer source over Members).
// The group relay admits only members: a reservation or a circuit is
// refused to any peer the rendezvous has not found (AllowReserve,
// AllowConnect), so a stranger gets nothing from a member.
//
// One Manager serves one host; it is safe for concurrent
// use.
type Manager struct {
	cfg connConfig
	src atomic.Pointer[membersBox]

	bound atomic.Bool // Options have been applied to a host's config

	mu      sync.Mutex
	host    host.Host       // set while the host runs
	running bool            // wg may be added to
	ctx     context.Context // ends when the host stops
	stop    context.CancelFunc
	changed chan struct{}     // closed and replaced when candidates may have changed
	inUse   map[peer.ID]bool  // relays this host holds a reservation with
	offered map[peer.ID]offer // when each candidate was last offered to AutoRelay
	reach   network.Reachability
	// ownReach: reach is what this Manager told the host (judge,
	// confirm), not AutoNAT's word or a forced mode; ownEchoes are its
	// emissions the subscription has not delivered back yet.
	ownReach  bool
	ownEchoes []network.Reachability
	punched   map[peer.ID]HolePunchEvent
	watch     map[uint64]func(HolePunchEvent)
	nextW     uint64
	wg        sync.WaitGroup
	// punchReady is closed once the host serves DCUtR; relayed
	// connections are held until then, or until holdUntil (see
	// punchready.go).
	punchReady chan struct{}
	punchNoted bool // punchReady is closed or about to be
	holdUntil  time.Time
	// settleClock times punchSettle: the real clock, whatever cfg.clock
	// is (see notePunching); tests swap it.
	settleClock clockwork.Clock
	own         ownNetworks // this host's networks, for rankDials
}

type membersBox struct{ m Members }

type offer struct {
	at  time.Time
	hop bool // known to serve circuit relay v2 then
}

var (
	_ relay.ACLFilter       = (*Manager)(nil)
	_ holepunch.EventTracer = (*Manager)(nil)
)

// New returns a Manager. With WithPublicCIDRs, it calls
// TreatAsPublic first.
func New(opts ...Option) (*Manager, error) {
	cfg := connConfig{
		groupRelay: true,
		resources:  DefaultGroupRelayResources(),
		reach:      ReachabilityAuto,
		listen:     DefaultListenAddrs(),
		retry:      DefaultRelayRetryDelay,
		grace:      DefaultRelayACLWait,
		clock:      clockwork.NewRealClock(),
		logger:     slog.New(slog.DiscardHandler),
		punchWait:  DefaultPunchWait,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.public) > 0 {
		if err := TreatAsPublic(cfg.public...); err != nil {
			return nil, err
		}
	}
	c := &Manager{
		cfg:     cfg,
		changed: make(chan struct{}),
		inUse:   make(map[peer.ID]bool),
		offered: make(map[peer.ID]offer),
		reach:   network.ReachabilityUnknown,
		punched: make(map[peer.ID]HolePunchEvent),
		watch:   make(map[uint64]func(HolePunchEvent)),

		punchReady:  make(chan struct{}),
		settleClock: clockwork.NewRealClock(),
		own:         ownNetworks{read: interfaceNetworks},
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.stop() // nothing runs until the host starts
	return c, nil
}

// Options returns the go-libp2p options of the host: TCP and QUIC
// transports listening where WithListenAddrs says, identify, AutoNAT v2 (and
// the AutoNAT v1 service, so public members answer other members' AutoNAT
// probes), hole punching (DCUtR, reported through OnHolePunch), the
// circuit relay transport and AutoRelay over this Manager's relays,
// the group relay service unless WithGroupRelay(false), and the reachability
// the mode asks for, a connection gater (see WithPunchWait and
// WithConnectionGater) and a dial ranker that tries a member on this host's
// own network directly before its relay. Pass more options after them,
// but no transport, listen address, connection gater or swarm options of
// your own.
//
// The options serve one host: libp2p.New fails with ErrInUse,
// before it builds anything, if they are used again (also after a
// libp2p.New that failed).
func (c *Manager) Options() []libp2p.Option {
	backoff := max(c.cfg.retry/3, time.Second)
	opts := []libp2p.Option{
		func(*libp2p.Config) error {
			if !c.bound.CompareAndSwap(false, true) {
				return ErrInUse
			}
			return nil
		},
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ListenAddrs(c.cfg.listen...),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(holepunch.WithTracer(c)),
		libp2p.ConnectionGater(punchGate{c}),
		libp2p.SwarmOpts(swarm.WithDialRanker(c.rankDials)),
		libp2p.EnableAutoNATv2(),
		// AutoRelay's defaults wait for four candidates or three minutes,
		// and ask the peer source every 30 s. A group has one relay or
		// two, found within a second or so: take the first, at once. The
		// peer source paces itself (see peerSource), and the backoff
		// after a refused reservation is shorter than WithRelayRetryDelay, so a
		// relay offered again after WithRelayRetryDelay is tried again.
		libp2p.EnableAutoRelayWithPeerSource(c.peerSource,
			autorelay.WithMinCandidates(1),
			autorelay.WithBootDelay(0),
			autorelay.WithBackoff(backoff),
			autorelay.WithMinInterval(time.Second),
		),
		libp2p.WithFxOption(fx.Invoke(c.bind)),
	}
	switch c.cfg.reach {
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic(), libp2p.EnableNATService())
	default:
		// Serves only while AutoNAT finds this host public.
		opts = append(opts, libp2p.EnableNATService())
	}
	if c.cfg.groupRelay {
		// go-libp2p runs it only while the host is public.
		res := c.cfg.resources
		opts = append(opts, libp2p.EnableRelayService(relay.WithResources(res), relay.WithACL(c)))
	}
	return opts
}

// bind runs inside the host's construction (libp2p.WithFxOption), so that
// the host's start and stop start and stop this Manager's work.
func (c *Manager) bind(h host.Host, lc fx.Lifecycle) {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { return c.start(h) },
		OnStop:  func(context.Context) error { c.halt(); return nil },
	})
}

// start runs after the host has started: it listens, and its addresses
// are known.
func (c *Manager) start(h host.Host) error {
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtAutoRelayAddrsUpdated),
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
		new(event.EvtHostReachableAddrsChanged),
		new(event.EvtLocalProtocolsUpdated),
	}, eventbus.Name("phrasemeet connectivity"), eventbus.BufSize(64))
	if err != nil {
		return fmt.Errorf("connectivity: %w", err)
	}
	var em event.Emitter
	if c.cfg.reach == ReachabilityAuto {
		if em, err = h.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful); err != nil {
			sub.Close()
			return fmt.Errorf("connectivity: %w", err)
		}
	}
	c.mu.Lock()
	c.host, c.running = h, true
	c.ctx, c.stop = context.WithCancel(context.Background())
	if c.cfg.punchWait > 0 {
		c.holdUntil = c.cfg.clock.Now().Add(c.cfg.punchWait)
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go c.run(h, sub, em)
	return nil
}

// halt stops what start started, before the host's own parts stop.
func (c *Manager) halt() {
	c.mu.Lock()
	c.running = false
	c.stop()
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	c.host = nil
	c.mu.Unlock()
}

// run follows the host's events: its addresses (to know at once that it
// is private), its reservations (relays in use are not offered again),
// its reachability, and what other peers support (a member that starts
// serving a relay becomes a candidate).
func (c *Manager) run(h host.Host, sub event.Subscription, em event.Emitter) {
	defer c.wg.Done()
	defer sub.Close()
	if em != nil {
		defer em.Close()
	}
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	c.judge(h, em)
	c.notePunching(h.Mux().Protocols())
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch e := e.(type) {
			case event.EvtLocalAddressesUpdated:
				c.judge(h, em)
			case event.EvtLocalReachabilityChanged:
				c.mu.Lock()
				if len(c.ownEchoes) > 0 && c.ownEchoes[0] == e.Reachability {
					c.ownEchoes = c.ownEchoes[1:] // ours, back
				} else {
					c.reach, c.ownReach = e.Reachability, false
				}
				c.mu.Unlock()
				c.cfg.logger.Debug("reachability", "reachability", e.Reachability.String())
			case event.EvtHostReachableAddrsChanged:
				c.confirm(h, em, e)
			case event.EvtAutoRelayAddrsUpdated:
				inUse := make(map[peer.ID]bool)
				for _, a := range e.RelayAddrs {
					if id, ok := circuitRelayID(a); ok {
						inUse[id] = true
					}
				}
				c.mu.Lock()
				c.inUse = inUse
				c.mu.Unlock()
				c.cfg.logger.Debug("relay addresses", "addrs", e.RelayAddrs)
				c.poke()
			case event.EvtPeerIdentificationCompleted, event.EvtPeerProtocolsUpdated:
				c.poke()
			case event.EvtLocalProtocolsUpdated:
				c.notePunching(e.Added)
			}
		}
	}
}

// judge tells the host it is private when none of its own direct
// addresses is public: such a host cannot be reached from outside its
// network without a relay, and need not wait for AutoNAT (which first
// probes after 15 s, and only through AutoNAT servers) to start AutoRelay.
// It never overrides a reachability already known: AutoNAT may find a
// host public through a port mapping, and its word stands.
func (c *Manager) judge(h host.Host, em event.Emitter) {
	if em == nil {
		return
	}
	c.mu.Lock()
	known := c.reach != network.ReachabilityUnknown
	c.mu.Unlock()
	if known || slices.ContainsFunc(h.Addrs(), isPublicDirect) {
		return
	}
	c.cfg.logger.Debug("no public address: private", "addrs", h.Addrs())
	c.tell(em, network.ReachabilityPrivate)
}

// confirm follows AutoNAT v2, which checks each of the host's public
// addresses with the peers that serve it (every host of Options does):
// once one is confirmed reachable, the host is public. go-libp2p takes
// its reachability (which starts the relay service and stops AutoRelay)
// from AutoNAT v1 only, which needs a peer running the v1 service, and
// members behind NAT stop serving it once they find themselves private:
// the first public member of a group of home users would never learn
// that it is public. AutoNAT v1's own word, once it has one, stands.
func (c *Manager) confirm(h host.Host, em event.Emitter, e event.EvtHostReachableAddrsChanged) {
	if em == nil {
		return
	}
	c.mu.Lock()
	reach, own := c.reach, c.ownReach || c.reach == network.ReachabilityUnknown
	c.mu.Unlock()
	if !own {
		return
	}
	reachable := slices.ContainsFunc(e.Reachable, isPublicDirect)
	switch {
	case reachable && reach != network.ReachabilityPublic:
		c.cfg.logger.Debug("a public address confirmed reachable: public", "addrs", e.Reachable)
		c.tell(em, network.ReachabilityPublic)
	case !reachable && reach == network.ReachabilityPublic &&
		(len(e.Unreachable) > 0 || !slices.ContainsFunc(h.Addrs(), isPublicDirect)):
		c.cfg.logger.Debug("no public address reachable any more: private", "unreachable", e.Unreachable)
		c.tell(em, network.ReachabilityPrivate)
	}
}

// tell emits r as the host's reachability.
func (c *Manager) tell(em event.Emitter, r network.Reachability) {
	c.mu.Lock()
	c.reach, c.ownReach = r, true
	c.ownEchoes = append(c.ownEchoes, r)
	c.mu.Unlock()
	if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: r}); err != nil {
		c.cfg.logger.Debug("emitting reachability", "err", err)
		c.mu.Lock()
		c.ownEchoes = c.ownEchoes[:len(c.ownEchoes)-1]
		c.mu.Unlock()
	}
}

// circuitRelayID returns the relay's peer ID in a circuit address
// (<relay address>/p2p/<relay ID>/p2p-circuit[...]).
func circuitRelayID(a ma.Multiaddr) (peer.ID, bool) {
	var id peer.ID
	for _, comp := range a {
		switch comp.Code() {
		case ma.P_P2P:
			pid, err := peer.IDFromBytes(comp.RawValue())
			if err != nil {
				return "", false
			}
			id = pid
		case ma.P_CIRCUIT:
			return id, id != ""
		}
	}
	return "", false
}

// poke wakes whoever waits for candidates to change.
func (c *Manager) poke() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Members is who a group's discovery has found: the peers a Manager lets
// use this host's circuit relay and offers to AutoRelay as relays. A
// libp2padapter.Adapter is one; so is anything else that knows the
// group's members.
type Members interface {
	// IsMember reports whether id is among the peers found now.
	IsMember(id peer.ID) bool
	// Members returns the peers found now, with the addresses their
	// records give.
	Members() []peer.AddrInfo
	// MembersChanged returns a channel closed at the next change to
	// what IsMember and Members report.
	MembersChanged() <-chan struct{}
}

// Attach makes m the group's members: the group relay admits them, and
// AutoRelay is offered those that serve a relay. Until Attach, the group
// relay admits nobody and only static relays are offered. A second
// Attach replaces the first.
func (c *Manager) Attach(m Members) {
	if m == nil {
		c.src.Store(nil)
	} else {
		c.src.Store(&membersBox{m: m})
	}
	c.poke()
}

func (c *Manager) members() Members {
	if b := c.src.Load(); b != nil {
		return b.m
	}
	return nil
}

// isMember reports whether the attached members include id.
func (c *Manager) isMember(id peer.ID) bool {
	m := c.members()
	return m != nil && m.IsMember(id)
}

// admit reports whether id is a member, waiting up to the ACL grace for
// the rendezvous to find it.
func (c *Manager) admit(id peer.ID) bool {
	if c.isMember(id) {
		return true
	}
	if c.cfg.grace <= 0 {
		return false
	}
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	timer := c.cfg.clock.NewTimer(c.cfg.grace)
	defer timer.Stop()
	for {
		var changed <-chan struct{}
		c.mu.Lock()
		poked := c.changed
		c.mu.Unlock()
		if m := c.members(); m != nil {
			changed = m.MembersChanged()
		}
		if c.isMember(id) {
			return true
		}
		select {
		case <-changed:
		case <-poked: // Attach
		case <-timer.Chan():
			return c.isMember(id)
		case <-ctx.Done():
			return false
		}
	}
}

// AllowReserve implements go-libp2p's relay.ACLFilter for the group
// relay: only a member may reserve a slot.
func (c *Manager) AllowReserve(p peer.ID, a ma.Multiaddr) bool {
	ok := c.admit(p)
	if !ok {
		c.cfg.logger.Debug("group relay: reservation refused to a non-member", "peer", p, "addr", a)
	}
	return ok
}

// AllowConnect implements go-libp2p's relay.ACLFilter for the group
// relay: a circuit is opened only from a member to a member.
func (c *Manager) AllowConnect(src peer.ID, srcAddr ma.Multiaddr, dest peer.ID) bool {
	ok := c.admit(src) && c.isMember(dest)
	if !ok {
		c.cfg.logger.Debug("group relay: circuit refused", "from", src, "addr", srcAddr, "to", dest)
	}
	return ok
}

// peerSource is AutoRelay's source of relay candidates: the static
// relays, then the members that serve a circuit relay (or that have a
// public address and whose protocols are not known yet). AutoRelay calls
// it whenever it has fewer candidates than it wants and closes nothing
// itself; a source that answered at once every time would have it
// re-examine the same peers once a second. So each candidate is offered
// once per WithRelayRetryDelay (again sooner if it has since been found to serve a
// relay), relays already in use are not offered, and when there is
// nothing to offer the channel stays open until there is.
func (c *Manager) peerSource(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, max(num, 0))
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		close(out) // AutoRelay asks again later
		return out
	}
	life := c.ctx
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer close(out)
		for {
			c.mu.Lock()
			poked := c.changed
			c.mu.Unlock()
			var changed <-chan struct{}
			if m := c.members(); m != nil {
				changed = m.MembersChanged()
			}
			found, wake := c.candidates(num)
			if len(found) > 0 {
				for _, f := range found {
					out <- f // buffered: num is the most there are
				}
				return
			}
			var timer clockwork.Timer
			var timeout <-chan time.Time
			if !wake.IsZero() {
				timer = c.cfg.clock.NewTimer(max(wake.Sub(c.cfg.clock.Now()), 0))
				timeout = timer.Chan()
			}
			select {
			case <-ctx.Done():
			case <-life.Done():
			case <-poked:
			case <-changed:
			case <-timeout:
			}
			if timer != nil {
				timer.Stop()
			}
			if ctx.Err() != nil || life.Err() != nil {
				return
			}
		}
	}()
	return out
}

// candidates picks at most num relays to offer now, and says when one
// offered recently may be offered again (zero if none waits).
func (c *Manager) candidates(num int) (out []peer.AddrInfo, wake time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.host
	if h == nil || num <= 0 {
		return nil, time.Time{}
	}
	now := c.cfg.clock.Now()
	for id, o := range c.offered {
		if !now.Before(o.at.Add(c.cfg.retry)) {
			delete(c.offered, id)
		}
	}
	consider := func(info peer.AddrInfo, static bool) {
		if len(out) == num || info.ID == h.ID() || c.inUse[info.ID] {
			return
		}
		protos, _ := h.Peerstore().GetProtocols(info.ID)
		hop := slices.Contains(protos, relayproto.ProtoIDv2Hop)
		switch {
		case hop:
		case len(protos) > 0:
			return // identified, and serves no relay
		case !static && !slices.ContainsFunc(info.Addrs, isPublicDirect):
			return // no address a relay needs
		}
		if o, ok := c.offered[info.ID]; ok && (o.hop || !hop) {
			if again := o.at.Add(c.cfg.retry); wake.IsZero() || again.Before(wake) {
				wake = again
			}
			return
		}
		c.offered[info.ID] = offer{at: now, hop: hop}
		addrs := slices.DeleteFunc(slices.Clone(info.Addrs), isCircuit)
		out = append(out, peer.AddrInfo{ID: info.ID, Addrs: addrs})
	}
	for _, s := range c.cfg.static {
		consider(s, true)
	}
	if m := c.members(); m != nil {
		for _, info := range m.Members() {
			if !slices.ContainsFunc(c.cfg.static, func(s peer.AddrInfo) bool { return s.ID == info.ID }) {
				consider(info, false)
			}
		}
	}
	if len(out) > 0 {
		c.cfg.logger.Debug("offering relay candidates", "peers", len(out))
	}
	return out, wake
}

// HolePunchEvent reports how one hole punch (DCUtR) with a peer ended.
type HolePunchEvent struct {
	// Peer is the other end.
	Peer peer.ID
	// Success says a direct connection was made.
	Success bool
	// Elapsed is how long the attempt took.
	Elapsed time.Duration
	// Err is why it failed (empty on success).
	Err string
	// Time is when it ended.
	Time time.Time
}

// Trace implements go-libp2p's holepunch.EventTracer; the host's hole
// punching service calls it. It is not for other callers.
func (c *Manager) Trace(evt *holepunch.Event) {
	for _, t := range c.cfg.tracers {
		t.Trace(evt)
	}
	end, ok := evt.Evt.(*holepunch.EndHolePunchEvt)
	if !ok || evt.Remote == "" {
		return
	}
	e := HolePunchEvent{Peer: evt.Remote, Success: end.Success, Elapsed: end.EllapsedTime, Err: end.Error,
		Time: time.Unix(0, evt.Timestamp)}
	c.mu.Lock()
	c.punched[e.Peer] = e
	fs := make([]func(HolePunchEvent), 0, len(c.watch))
	for _, f := range c.watch {
		fs = append(fs, f)
	}
	c.mu.Unlock()
	c.cfg.logger.Debug("hole punch", "peer", e.Peer, "success", e.Success, "elapsed", e.Elapsed, "err", e.Err)
	for _, f := range fs {
		f(e)
	}
}

// OnHolePunch calls f each time a hole punch with some peer ends, from
// the hole punching goroutine (so f should return quickly), until the
// returned stop is called. go-libp2p has no event for it on the host's
// bus.
func (c *Manager) OnHolePunch(f func(HolePunchEvent)) (stop func()) {
	if f == nil {
		return func() {}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextW++
	id := c.nextW
	c.watch[id] = f
	return func() {
		c.mu.Lock()
		delete(c.watch, id)
		c.mu.Unlock()
	}
}

// LastHolePunch returns how the last hole punch with id ended, if there
// was one.
func (c *Manager) LastHolePunch(id peer.ID) (HolePunchEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.punched[id]
	return e, ok
}

// CurrentReachability returns what the host takes its reachability to be
// now: from AutoNAT, a forced mode, or (in auto mode) private at once when
// it has no public address. Unknown before the host has started.
func (c *Manager) CurrentReachability() network.Reachability {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reach
}

// Link says how a host is connected to a peer.
type Link uint8

// The links.
const (
	// LinkNone: no open connection.
	LinkNone Link = iota
	// LinkRelayed: only connections through a circuit relay.
	LinkRelayed
	// LinkDirect: at least one direct connection.
	LinkDirect
)

// String returns "not connected", "relayed" or "direct".
func (l Link) String() string {
	switch l {
	case LinkNone:
		return "not connected"
	case LinkRelayed:
		return "relayed"
	case LinkDirect:
		return "direct"
	}
	return fmt.Sprintf("Link(%d)", uint8(l))
}

// LinkTo says how n is connected to id now. A connection is relayed when
// its remote address goes through a circuit (/p2p-circuit): that holds for
// connections through a relay without limits too, which go-libp2p does
// not mark Stat().Limited.
func LinkTo(n network.Network, id peer.ID) Link {
	l := LinkNone
	for _, conn := range n.ConnsToPeer(id) {
		if conn.IsClosed() {
			continue
		}
		if !IsRelayed(conn) {
			return LinkDirect
		}
		l = LinkRelayed
	}
	return l
}

// IsRelayed reports whether conn goes through a circuit relay.
func IsRelayed(conn network.Conn) bool {
	return isCircuit(conn.RemoteMultiaddr()) || conn.Stat().Limited
}
