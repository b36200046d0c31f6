package meshbench

import (
	"context"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/phrasemeet/discovery/internal/netdelay"
)

// kadRendezvous is the string every kad-dht peer advertises and looks up.
const kadRendezvous = "phrasemeet-bench-mesh"

// kadPrefix keeps the benchmark's DHT a network of its own: its protocol
// IDs are not the public Amino DHT's (/ipfs/kad/1.0.0), and it has no
// bootstrap peer but the run's own.
const kadPrefix = "/phrasemeet-bench"

// kadFindEvery is how often each peer asks the DHT for the others: the
// issue's baseline.
const kadFindEvery = time.Second

// kadRun runs n hosts with go-libp2p-kad-dht in server mode, bootstrapped
// from one extra host of the run (never a public peer), each advertising
// kadRendezvous through routing.NewRoutingDiscovery and calling FindPeers
// every kadFindEvery, connecting to what it finds. The clock starts when
// they all connect to the bootstrap host; the hosts and DHTs are built
// before, as the phrasemeet peers are.
func kadRun(ctx context.Context, cfg runConfig) (result, error) {
	var closers []func()
	defer func() { closeAll(closers) }()
	newDHT := func(h host.Host, boot ...peer.AddrInfo) (*dht.IpfsDHT, error) {
		return dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix(kadPrefix), dht.BootstrapPeers(boot...))
	}

	bh, err := newHost(cfg.rtt)
	if err != nil {
		return result{}, err
	}
	bd, err := newDHT(bh)
	if err != nil {
		bh.Close()
		return result{}, err
	}
	closers = append(closers, func() { bd.Close(); bh.Close() })
	boot := peer.AddrInfo{ID: bh.ID(), Addrs: bh.Addrs()}

	hosts := make([]host.Host, cfg.n)
	dhts := make([]*dht.IpfsDHT, cfg.n)
	for i := range cfg.n {
		h, err := newHost(cfg.rtt)
		if err != nil {
			return result{}, hostErr(i, err)
		}
		d, err := newDHT(h, boot)
		if err != nil {
			h.Close()
			return result{}, hostErr(i, err)
		}
		hosts[i], dhts[i] = h, d
		closers = append(closers, func() { d.Close(); h.Close() })
	}
	tr := newTracker(hosts)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	tr.begin()
	go tr.watchMesh(runCtx)
	for i := range cfg.n {
		go kadPeer(runCtx, tr, i, hosts[i], dhts[i], boot)
	}
	waitCtx, cancel := context.WithTimeout(runCtx, cfg.timeout)
	defer cancel()
	found, mesh := tr.wait(waitCtx)
	stop()
	return result{found: found, mesh: mesh}, nil
}

// kadPeer is one peer's discovery loop.
func kadPeer(ctx context.Context, tr *tracker, i int, h host.Host, d *dht.IpfsDHT, boot peer.AddrInfo) {
	for h.Connect(ctx, boot) != nil {
		if netdelay.Pause(ctx, time.Second) != nil {
			return
		}
	}
	if err := d.Bootstrap(ctx); err != nil {
		return
	}
	rd := drouting.NewRoutingDiscovery(d)
	// Advertise until one succeeds: it fails while the routing table is
	// still empty. (p2p/discovery/util.Advertise would wait minutes after
	// a failure.) Its TTL is hours, longer than any run.
	go func() {
		for {
			if _, err := rd.Advertise(ctx, kadRendezvous); err == nil || ctx.Err() != nil {
				return
			}
			if netdelay.Pause(ctx, time.Second) != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(kadFindEvery)
	defer tick.Stop()
	for {
		if found, err := rd.FindPeers(ctx, kadRendezvous); err == nil {
			for ai := range found {
				if ai.ID == h.ID() {
					continue
				}
				tr.sawPeer(i, ai.ID)
				if h.Network().Connectedness(ai.ID) != network.Connected && len(ai.Addrs) > 0 {
					go func() {
						cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						defer cancel()
						_ = h.Connect(cctx, ai)
					}()
				}
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
