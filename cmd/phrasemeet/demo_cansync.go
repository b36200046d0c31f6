package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The can-sync profile behind the libp2p adapter, for the demo.
//
// can-sync's wire carries one thing per slot: an iroh endpoint ID, the
// lowercase hex of an Ed25519 public key. A libp2p host with an Ed25519
// identity has such a key, so its peer ID and a can-sync ID are two
// spellings of one key, and canSyncHosts translates between them. What the
// wire cannot carry is addresses: iroh finds an endpoint's addresses
// through its own discovery, which the demo has no equivalent of. Its
// hosts all live in one process, so they take each other's addresses from
// a shared address book; the demo says so when it runs this profile.

// addrBook maps the demo's peer IDs to their listen addresses.
type addrBook struct {
	mu    sync.Mutex
	addrs map[peer.ID][]string
}

func newAddrBook() *addrBook { return &addrBook{addrs: make(map[peer.ID][]string)} }

func (b *addrBook) set(id peer.ID, addrs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs[id] = slices.Clone(addrs)
}

func (b *addrBook) get(id peer.ID) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.addrs[id])
}

// canSyncHosts is a discovery.Discoverer of libp2p records over a CanSync:
// it announces the hex of the peer ID's key and reports found keys as peer
// IDs with the addresses the book holds for them.
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
	return &canSyncHostAnn{Announcement: ann, rec: rec.Clone()}, nil
}

func (c *canSyncHosts) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	in, err := c.cs.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan discovery.Event)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(out)
		for e := range in {
			id, err := peerOfCanSyncID(e.Peer.ID)
			if err != nil {
				continue // a can-sync peer that is not one of the demo's hosts
			}
			e.Peer.ID, e.Peer.Addrs = id.String(), c.book.get(id)
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (c *canSyncHosts) Close(ctx context.Context) error {
	err := c.cs.Close(ctx) // closes every subscription, ending the goroutines
	c.wg.Wait()
	return err
}

// canSyncHostAnn keeps the libp2p record the adapter asked for, so Record
// answers in the adapter's terms; an Update (new addresses) has nothing to
// change on can-sync's wire.
type canSyncHostAnn struct {
	discovery.Announcement
	mu  sync.Mutex
	rec discovery.Record
}

func (a *canSyncHostAnn) Record() discovery.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec.Clone()
}

func (a *canSyncHostAnn) Update(_ context.Context, rec discovery.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if rec.ID != a.rec.ID {
		return fmt.Errorf("%w: the ID cannot change", discovery.ErrInvalidRecord)
	}
	a.rec = rec.Clone()
	return nil
}

// canSyncIDOf is the can-sync ID of a libp2p peer ID with an Ed25519 key.
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

// peerOfCanSyncID is the libp2p peer ID of a can-sync ID.
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
