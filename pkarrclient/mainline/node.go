package mainline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"
	"github.com/anacrolix/dht/v2/types"
	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// New starts a DHT node. It returns once the socket is open; the first
// bootstrap runs in the background, and lookups made before it finishes
// start from the snapshot file or the routers. Close releases everything.
func New(opts ...Option) (*DHT, error) {
	cfg := dhtConfig{
		listen:        ":0",
		bootstrap:     DefaultBootstrap(),
		resolver:      net.DefaultResolver,
		storeCapacity: DefaultStoreCapacity,
		timeout:       defaultDHTTimeout,
		alpha:         defaultDHTAlpha,
		sendRate:      defaultDHTSendRate,
		sendBurst:     defaultDHTSendBurst,
		sourceRate:    defaultDHTSourceRate,
		sourceBurst:   defaultDHTSourceBurst,
		refresh:       DefaultRefreshInterval,
		clock:         clockwork.NewRealClock(),
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	logger := cfg.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conn := cfg.conn
	if conn == nil {
		var err error
		if conn, err = net.ListenPacket("udp", cfg.listen); err != nil {
			return nil, fmt.Errorf("pkarr: DHT listen: %w", err)
		}
	}

	// The snapshot is read before anything is sent: a file this package
	// did not write fails New, and a damaged one of ours is ignored.
	var snapshot []krpc.NodeInfo
	if cfg.nodesFile != "" {
		var err error
		snapshot, err = readNodesSnapshot(cfg.nodesFile)
		switch {
		case errors.Is(err, ErrSnapshotDamaged):
			logger.Warn("pkarr DHT: routing table snapshot damaged; starting without it, the next save replaces it",
				slog.String("file", cfg.nodesFile), slog.Any("err", err))
		case err != nil:
			conn.Close()
			return nil, err
		}
	}

	d := &DHT{conn: conn, cfg: cfg, logger: logger}
	d.ctx, d.cancel = context.WithCancel(context.Background())

	sc := dht.NewDefaultServerConfig()
	filtered := &filterConn{PacketConn: conn}
	if cfg.serve && cfg.sourceRate > 0 {
		limits, err := newSourceLimits(cfg.sourceRate, cfg.sourceBurst, cfg.clock, logger)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("pkarr: DHT source limits: %w", err)
		}
		filtered.limits = limits
	}
	sc.Conn = filtered
	sc.Passive = !cfg.serve
	sc.NoSecurity = true
	sc.StartingNodes = d.startingNodes
	sc.OnQuery = guardQuery
	sc.Logger = bridgeLogger(logger)
	sc.SendLimiter = newSendLimiter(cfg.sendRate, cfg.sendBurst)
	if cfg.resendDelay > 0 {
		delay := cfg.resendDelay
		sc.QueryResendDelay = func() time.Duration { return delay }
	}
	if cfg.serve {
		store, err := newItemStore(cfg.storeCapacity, dhtItemLifetime, cfg.clock)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("pkarr: DHT item store: %w", err)
		}
		sc.Store = store
		sc.Exp = dhtItemLifetime
		sc.OnQuery = store.onQuery
	} else {
		// A passive node is never asked to store anything; an empty store
		// also keeps its own puts out of it (we send puts as raw queries).
		sc.Store = noItemStore{}
	}
	srv, err := dht.NewServer(sc)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("pkarr: DHT server: %w", err)
	}
	d.srv = srv

	if len(snapshot) > 0 {
		n := d.addSnapshotNodes(snapshot)
		logger.Debug("pkarr DHT: loaded routing table snapshot",
			slog.String("file", cfg.nodesFile), slog.Int("nodes", n))
	}
	d.wg.Add(1)
	go d.background()
	return d, nil
}

// Close stops the node, waits for its lookups to wind down, saves the
// routing table snapshot if one is configured and closes the socket. It is
// safe to call more than once.
func (d *DHT) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.cancel()
		d.wg.Wait()
		if d.cfg.nodesFile != "" {
			if err := d.saveNodes(); err != nil {
				d.closeErr = err
			}
		}
		d.srv.Close()
		// The library closes the socket in a goroutine; close it here so
		// the port is free when Close returns.
		d.conn.Close()
	})
	return d.closeErr
}

// background runs the first bootstrap and the periodic refresh.
func (d *DHT) background() {
	defer d.wg.Done()
	if len(d.cfg.bootstrap) == 0 && d.srv.NumNodes() == 0 {
		// The first node of a private network: nobody to ask yet. Nodes
		// that join through it fill its table.
		d.logger.Debug("pkarr DHT: no bootstrap nodes and no snapshot; waiting to be contacted")
	} else {
		d.initialBootstrap()
	}
	if d.cfg.refresh <= 0 {
		return
	}
	ticker := d.cfg.clock.NewTicker(d.cfg.refresh)
	defer ticker.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-ticker.Chan():
		}
		// A serving node refreshes always; a client only when its table
		// has thinned out, which lookups alone do not repair.
		if d.cfg.serve || d.srv.NumNodes() < dhtK {
			if _, err := d.Bootstrap(d.ctx); err != nil && d.ctx.Err() == nil {
				d.logger.Warn("pkarr DHT: table refresh failed", slog.Any("err", err))
			}
		}
		d.saveNodesLogged()
	}
}

// bootstrapRetries and bootstrapRetryDelay bound the first bootstrap's
// retries: a burst of starts on a busy machine can leave a lookup with a
// handful of answers and the table nearly empty for good.
const (
	bootstrapRetries    = 3
	bootstrapRetryDelay = time.Second
)

// initialBootstrap bootstraps, and tries again (after 1, 2 and 4 s) while
// the table holds fewer than K nodes.
func (d *DHT) initialBootstrap() {
	delay := bootstrapRetryDelay
	for attempt := 0; ; attempt++ {
		n, err := d.Bootstrap(d.ctx)
		if d.ctx.Err() != nil {
			return
		}
		table := d.srv.NumNodes()
		if err != nil {
			d.logger.Warn("pkarr DHT: bootstrap failed", slog.Any("err", err), slog.Int("attempt", attempt+1))
		} else {
			d.logger.Debug("pkarr DHT: bootstrapped", slog.Int("responses", n), slog.Int("table", table))
			d.saveNodesLogged()
		}
		if table >= dhtK || attempt == bootstrapRetries {
			return
		}
		select {
		case <-d.ctx.Done():
			return
		case <-d.cfg.clock.After(delay):
		}
		delay *= 2
	}
}

// Bootstrap fills the routing table with a find_node lookup of the node's
// own ID, starting from the table, the snapshot or the routers. It returns
// how many nodes answered. New already runs one in the background; call
// it to wait for a populated table.
func (d *DHT) Bootstrap(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	defer cancel()
	self := d.srv.ID()
	op, err := d.startTraversal(krpc.ID(self), 2*dhtK, nil, func(ctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
		res := d.srv.Query(ctx, dht.NewAddr(addr.UDP()), "find_node", dht.QueryInput{
			MsgArgs: krpc.MsgArgs{
				ID:     self,
				Target: self,
				Want:   []krpc.Want{krpc.WantNodes, krpc.WantNodes6},
			},
		})
		return res.TraversalQueryResult(addr)
	})
	if err != nil {
		return 0, fmt.Errorf("DHT bootstrap: %w", err)
	}
	select {
	case <-op.Stalled():
	case <-ctx.Done():
	}
	op.Stop()
	<-op.Stopped() // the stats are final once no query can add to them
	n := int(atomic.LoadUint32(&op.Stats().NumResponses))
	if n == 0 {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("%w: DHT bootstrap: %w", pkarrclient.ErrUnavailable, err)
		}
		return 0, fmt.Errorf("%w: DHT bootstrap: no node answered", pkarrclient.ErrUnavailable)
	}
	return n, nil
}

// startTraversal starts a lookup toward target from the routing table (or
// the routers) and registers it so Close waits for its queries. It
// fails, wrapping ErrUnavailable, when there is nowhere to start or the
// DHT is closed.
func (d *DHT) startTraversal(target krpc.ID, k int, dataFilter func(any) bool,
	query func(context.Context, krpc.NodeAddr) traversal.QueryResult) (*traversal.Operation, error) {
	starting, err := d.srv.TraversalStartingNodes()
	if err != nil {
		return nil, fmt.Errorf("%w: no DHT nodes to start from: %w", pkarrclient.ErrUnavailable, err)
	}
	if len(starting) == 0 {
		return nil, fmt.Errorf("%w: no DHT nodes to start from", pkarrclient.ErrUnavailable)
	}
	// traversal.Start runs the lookup before its starting nodes are added,
	// so its first round may offer a stall before any query was sent. It
	// is offered only until the first query starts, so waiting for that
	// (below) keeps callers from stopping a lookup that never ran.
	started := make(chan struct{})
	var startOnce sync.Once
	op := traversal.Start(traversal.OperationInput{
		Target: target,
		Alpha:  d.cfg.alpha,
		K:      k,
		DoQuery: func(ctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
			startOnce.Do(func() { close(started) })
			return query(ctx, addr)
		},
		NodeFilter: d.nodeFilter,
		DataFilter: dataFilter,
	})
	for i := range starting {
		starting[i].Addr = krpc.NodeAddrPort{AddrPort: unmapAddrPort(starting[i].Addr.AddrPort)}
	}
	if op.AddNodes(starting) == 0 {
		op.Stop()
		return nil, fmt.Errorf("%w: no usable DHT nodes to start from (%d filtered out)", pkarrclient.ErrUnavailable, len(starting))
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		op.Stop()
		return nil, fmt.Errorf("%w: DHT closed", pkarrclient.ErrUnavailable)
	}
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		select {
		case <-op.Stopped():
		case <-d.ctx.Done():
			op.Stop()
			<-op.Stopped()
		}
	}()
	select {
	case <-started:
	case <-d.ctx.Done():
	}
	return op, nil
}

// nodeFilter drops IPv4-mapped IPv6 contacts: every IPv4 node is also
// listed in that form, and querying both would count one node twice.
func (d *DHT) nodeFilter(n types.AddrMaybeId) bool {
	if n.Addr.Addr().Is4In6() {
		return false
	}
	return d.srv.TraversalNodeFilter(n)
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// startingNodes resolves the bootstrap routers for the library, which asks
// when its routing table is empty. Numeric addresses skip DNS.
func (d *DHT) startingNodes() ([]dht.Addr, error) {
	ctx, cancel := context.WithTimeout(d.ctx, bootstrapLookupTimeout)
	defer cancel()
	var addrs []dht.Addr
	var errs []error
	for _, hp := range d.cfg.bootstrap {
		host, portText, err := net.SplitHostPort(hp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		port, err := net.LookupPort("udp", portText)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", hp, err))
			continue
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = d.cfg.resolver.LookupNetIP(ctx, "ip", host); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", hp, err))
			continue
		}
		for _, ip := range ips {
			addrs = append(addrs, dht.NewAddr(net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), uint16(port)))))
		}
	}
	if len(addrs) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, errors.New("no bootstrap nodes configured")
	}
	return addrs, nil
}

// guardQuery drops queries that would crash anacrolix's handlers and fixes
// the field its node-returning answers read.
//
// A query without arguments ("d1:q3:put1:t2:aa1:y1:qe") makes the put,
// get and announce_peer handlers dereference nil. And get and find_node
// answers choose the nodes closest to the info_hash field, which those
// queries leave empty, so every node answered with the nodes closest to
// zero and lookups in networks of more than ten nodes stalled; copying
// the target there restores BEP5 behaviour.
func guardQuery(m *krpc.Msg, _ net.Addr) bool {
	if m.A == nil {
		return false
	}
	switch m.Q {
	case "get", "find_node":
		m.A.InfoHash = m.A.Target
	}
	return true
}

// newSendLimiter gives each node its own limiter (see defaultDHTSendRate).
func newSendLimiter(perSecond float64, burst int) *rate.Limiter {
	if perSecond == 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

func (d *DHT) saveNodesLogged() {
	if d.cfg.nodesFile == "" {
		return
	}
	if err := d.saveNodes(); err != nil {
		d.logger.Warn("pkarr DHT: saving routing table snapshot failed",
			slog.String("file", d.cfg.nodesFile), slog.Any("err", err))
	}
}
