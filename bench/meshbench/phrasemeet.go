package meshbench

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/passphrase"
	"github.com/phrasemeet/discovery/internal/netdelay"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// namespace is where every phrasemeet peer advertises and finds the
// others, as passphrase.Module's AutoConnect does by default.
const namespace = passphrase.DefaultNamespace

// secrets are what a benchmark invocation's phrasemeet peers share: the
// passphrase (can-sync derives its slot keys from it, one BLAKE3 each) and
// the default profile's group, derived once (Argon2id, 64 MiB and about
// 130 ms) and shared by every peer of every run; the time measured starts
// at announcing, after it.
type secrets struct {
	pass  []byte
	group *slotdiscovery.Group
}

// phrasemeetRun runs n phrasemeet peers against a fresh relay: each a
// libp2p host with its own pkarr client over its own HTTP transport (the
// injected rtt, its own X-Forwarded-For), an Adapter over the profile's
// discoverer with the library's defaults, and a Connector (defaults)
// dialing what the Adapter finds; the wiring of passphrase.Module with
// AutoConnect, minus its per-peer KDF and connectivity.Manager (hole
// punching and relays, which loopback does not use). All advertise at
// once; the clock starts then.
func phrasemeetRun(ctx context.Context, cfg runConfig, canSync bool, sec *secrets) (result, error) {
	rl, err := startRelay(cfg.limits)
	if err != nil {
		return result{}, err
	}
	defer rl.close()

	var closers []func()
	defer func() { closeAll(closers) }()
	hosts := make([]host.Host, cfg.n)
	adapters := make([]*libp2padapter.Adapter, cfg.n)
	book := newAddrBook()
	for i := range cfg.n {
		h, err := newHost(cfg.rtt)
		if err != nil {
			return result{}, hostErr(i, err)
		}
		hosts[i] = h
		book.set(h.ID(), h.Addrs())
	}
	tr := newTracker(hosts)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for i, h := range hosts {
		hc := &http.Client{Transport: &netdelay.Transport{ForwardedFor: peerIP(i), RTT: cfg.rtt, Base: peerTransport()}}
		client, err := pkarrclient.NewRelayClient([]string{rl.url}, pkarrclient.RelayHTTPClient(hc))
		if err != nil {
			return result{}, hostErr(i, err)
		}
		var open libp2padapter.Opener
		if canSync {
			open = func(string) (discovery.Discoverer, error) {
				cs, err := slotdiscovery.NewCanSync(client, sec.pass)
				if err != nil {
					return nil, err
				}
				return &canSyncHosts{cs: cs, book: book}, nil
			}
		} else {
			open = passphrase.SlotOpener(h, client, sec.group)
		}
		a, err := libp2padapter.New(h, open, libp2padapter.WithLoopback())
		if err != nil {
			return result{}, hostErr(i, err)
		}
		adapters[i] = a
		events, err := a.Subscriber(namespace).Subscribe(runCtx)
		if err != nil {
			return result{}, hostErr(i, err)
		}
		go func() {
			for e := range events {
				if e.Type != discovery.Found {
					continue
				}
				if id, err := peer.Decode(e.Peer.ID); err == nil {
					tr.sawPeer(i, id)
				}
			}
		}()
		conn, err := libp2padapter.NewConnector(h, a.Subscriber(namespace))
		if err == nil {
			err = conn.Start(runCtx)
		}
		if err != nil {
			return result{}, hostErr(i, err)
		}
		closers = append(closers, func() {
			conn.Close()
			a.Close() // leaves: a tombstone, or a cleared can-sync slot
			h.Close()
			hc.CloseIdleConnections()
		})
	}

	rl.setCounting(true)
	tr.begin()
	go tr.watchMesh(runCtx)
	errs := make(chan error, cfg.n)
	for i, a := range adapters {
		go func() {
			if _, err := a.Advertise(runCtx, namespace); err != nil && runCtx.Err() == nil {
				errs <- hostErr(i, err)
			}
		}()
	}
	waitCtx, cancel := context.WithTimeout(runCtx, cfg.timeout)
	defer cancel()
	go func() {
		select {
		case err := <-errs:
			fmt.Fprintf(cfg.log, "  advertise failed: %v\n", err)
			cancel()
		case <-waitCtx.Done():
		}
	}()
	found, mesh := tr.wait(waitCtx)
	c := rl.setCounting(false)
	stop()
	return result{found: found, mesh: mesh, counts: c, counted: true}, nil
}

// The can-sync profile behind the libp2p adapter. can-sync's wire carries
// one thing per slot, the hex of an Ed25519 public key (an iroh endpoint
// ID): a libp2p host with an Ed25519 identity has such a key, so a peer ID
// and a can-sync ID are two spellings of one key. The wire has no room for
// addresses (iroh finds those through its own discovery), so the hosts,
// all in this process, take each other's addresses from a shared address
// book, as `phrasemeet demo --profile can-sync` does.

type addrBook struct {
	mu    sync.Mutex
	addrs map[peer.ID][]string
}

func newAddrBook() *addrBook { return &addrBook{addrs: map[peer.ID][]string{}} }

func (b *addrBook) set(id peer.ID, addrs []ma.Multiaddr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range addrs {
		b.addrs[id] = append(b.addrs[id], a.String())
	}
}

func (b *addrBook) get(id peer.ID) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.addrs[id])
}

// canSyncHosts is a discovery.Discoverer of libp2p records over a CanSync.
type canSyncHosts struct {
	cs   *slotdiscovery.CanSync
	book *addrBook
	wg   sync.WaitGroup
}

func (c *canSyncHosts) Name() string { return c.cs.Name() }

func (c *canSyncHosts) Announce(ctx context.Context, rec discovery.Record) (discovery.Announcement, error) {
	id, err := canSyncIDOf(rec.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", discovery.ErrInvalidRecord, err)
	}
	ann, err := c.cs.Announce(ctx, discovery.Record{ID: id})
	if err != nil {
		return nil, err
	}
	return &canSyncAnn{Announcement: ann, rec: rec.Clone()}, nil
}

func (c *canSyncHosts) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	in, err := c.cs.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan discovery.Event)
	c.wg.Go(func() {
		defer close(out)
		for e := range in {
			id, err := peerOfCanSyncID(e.Peer.ID)
			if err != nil {
				continue
			}
			e.Peer.ID, e.Peer.Addrs = id.String(), c.book.get(id)
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	})
	return out, nil
}

func (c *canSyncHosts) Close(ctx context.Context) error {
	err := c.cs.Close(ctx)
	c.wg.Wait()
	return err
}

// canSyncAnn answers Record in the adapter's terms; an Update (new
// addresses) has nothing to change on can-sync's wire.
type canSyncAnn struct {
	discovery.Announcement
	mu  sync.Mutex
	rec discovery.Record
}

func (a *canSyncAnn) Record() discovery.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec.Clone()
}

func (a *canSyncAnn) Update(_ context.Context, rec discovery.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if rec.ID != a.rec.ID {
		return fmt.Errorf("%w: the ID cannot change", discovery.ErrInvalidRecord)
	}
	a.rec = rec.Clone()
	return nil
}

func canSyncIDOf(peerID string) (string, error) {
	id, err := peer.Decode(peerID)
	if err != nil {
		return "", err
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return "", err
	}
	if pub.Type() != crypto.Ed25519 {
		return "", fmt.Errorf("peer %s has a %s key; can-sync IDs are Ed25519 keys", id, pub.Type())
	}
	raw, err := pub.Raw()
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(raw), nil
}

func peerOfCanSyncID(s string) (peer.ID, error) {
	raw, err := hex.DecodeString(s)
	if err != nil {
		return "", err
	}
	pub, err := crypto.UnmarshalEd25519PublicKey(raw)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pub)
}
