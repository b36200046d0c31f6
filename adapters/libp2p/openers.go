package libp2padapter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/phrasemeet/discovery"
)

// IDSchemes are the schemes the passphrase rendezvous applies
// (passphrase.SlotOpener): Ed25519 keys in hex (iroh endpoint IDs), then
// libp2p peer IDs. Give the same to every program that shares a group
// with adapters (slotdiscovery.WithIDSchemes, slotdiscovery.TableIDSchemes),
// so all judge entries alike.
func IDSchemes() []discovery.IDScheme {
	return []discovery.IDScheme{discovery.Ed25519Hex{}, PeerIDScheme{}}
}

// MemoryOpener opens each namespace as a separate space inside m, so that
// adapters sharing m meet per namespace exactly as they would through
// relays, but in process and at once. It is for tests and examples.
//
// A Memory is one space, so each namespace's discoverer joins m and tags
// the IDs it announces with the namespace; it shows its subscribers only
// records carrying its own tag, with the tag removed. One host can thus
// advertise the same peer ID in several namespaces of one Memory.
func MemoryOpener(m *discovery.Memory) Opener {
	return func(ns string) (discovery.Discoverer, error) {
		if m == nil {
			return nil, fmt.Errorf("%w: nil Memory", ErrInvalidOption)
		}
		return newNamespaced(m.Join("memory"), ns), nil
	}
}

// namespaced is a discovery.Discoverer showing one namespace of a shared
// space: it prefixes the IDs it announces with a tag and sees only records
// with its tag.
type namespaced struct {
	d   discovery.Discoverer
	tag string

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// mu orders Subscribe's wg.Add before Close's wg.Wait: a Subscribe
	// that passed the closed check as Close began would otherwise add a
	// goroutine Close no longer waits for.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // forwarding goroutines
}

func newNamespaced(d discovery.Discoverer, ns string) *namespaced {
	// The namespace's length goes first so no tag is a prefix of another:
	// without it, namespace "a" would see namespace "a/b"'s records.
	return &namespaced{d: d, tag: strconv.Itoa(len(ns)) + ":" + ns + "/", done: make(chan struct{})}
}

func (n *namespaced) Name() string { return n.d.Name() }

func (n *namespaced) wrap(rec discovery.Record) discovery.Record {
	out := rec.Clone()
	out.ID = n.tag + rec.ID
	return out
}

func (n *namespaced) unwrap(rec discovery.Record) (discovery.Record, bool) {
	id, ok := strings.CutPrefix(rec.ID, n.tag)
	if !ok || id == "" {
		return discovery.Record{}, false
	}
	out := rec.Clone()
	out.ID = id
	return out, true
}

func (n *namespaced) Announce(ctx context.Context, rec discovery.Record) (discovery.Announcement, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	ann, err := n.d.Announce(ctx, n.wrap(rec))
	if err != nil {
		return nil, err
	}
	return &namespacedAnnouncement{n: n, a: ann}, nil
}

func (n *namespaced) Subscribe(ctx context.Context) (<-chan discovery.Event, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, discovery.ErrClosed
	}
	in, err := n.d.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan discovery.Event)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(out)
		for e := range in {
			rec, ok := n.unwrap(e.Peer.Record)
			if !ok {
				continue
			}
			e.Peer.Record = rec
			select {
			case out <- e:
			case <-ctx.Done():
				return
			case <-n.done:
				return
			}
		}
	}()
	return out, nil
}

func (n *namespaced) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		close(n.done)
	})
	err := n.d.Close(ctx)
	n.wg.Wait()
	return err
}

type namespacedAnnouncement struct {
	n *namespaced
	a discovery.Announcement
}

func (a *namespacedAnnouncement) Record() discovery.Record {
	rec, _ := a.n.unwrap(a.a.Record())
	return rec
}

func (a *namespacedAnnouncement) Update(ctx context.Context, rec discovery.Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	// Checked here so the error quotes the caller's IDs, not tagged ones.
	if old := a.Record().ID; rec.ID != old {
		return fmt.Errorf("%w: the ID cannot change (%q to %q)", discovery.ErrInvalidRecord, old, rec.ID)
	}
	return a.a.Update(ctx, a.n.wrap(rec))
}

func (a *namespacedAnnouncement) Leave(ctx context.Context) error { return a.a.Leave(ctx) }
