package chat

import (
	"context"
	"errors"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/passphrase"
	"github.com/phrasemeet/discovery/mdnsdiscovery"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// mdnsPurpose names the key mDNS is keyed with (Group.DeriveKey), as
// mdnsdiscovery's documentation suggests.
const mdnsPurpose = "mdnsdiscovery"

// slotHolder is what a slot discoverer tells about where an announcement
// is (*slotdiscovery.Discoverer has it; the other mechanisms have no
// slots).
type slotHolder interface {
	Slot(id string) int
}

// Slots remembers the slot discoverer of every namespace the slot opener
// has opened, so the monitor can report which slot this peer holds. The
// adapter owns the discoverers; Slots only asks them.
type Slots struct {
	mu sync.Mutex
	by map[string]slotHolder
}

func newSlots() *Slots { return &Slots{by: make(map[string]slotHolder)} }

// Slot returns the slot id holds in namespace ns, or -1 while it is still
// claiming one, or when ns has no slot discoverer (mDNS, memory).
func (s *Slots) Slot(ns, id string) int {
	s.mu.Lock()
	h := s.by[ns]
	s.mu.Unlock()
	if h == nil {
		return -1
	}
	return h.Slot(id)
}

// HasSlots reports whether namespace ns is found through slots.
func (s *Slots) HasSlots(ns string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.by[ns] != nil
}

func (s *Slots) add(ns string, d discovery.Discoverer) {
	if h, ok := d.(slotHolder); ok {
		s.mu.Lock()
		s.by[ns] = h
		s.mu.Unlock()
	}
}

// SlotOpener opens each namespace as the slot rendezvous of its sub-group
// (passphrase.SlotOpener, so any adapter user with the same passphrase
// and application name meets the chat, and h's entries are signed with
// its key), and records it in slots.
func SlotOpener(h host.Host, client *pkarrclient.Client, g *slotdiscovery.Group, slots *Slots, opts ...slotdiscovery.Option) libp2padapter.Opener {
	open := passphrase.SlotOpener(h, client, g, opts...)
	return func(ns string) (discovery.Discoverer, error) {
		d, err := open(ns)
		if err == nil {
			slots.add(ns, d)
		}
		return d, err
	}
}

// MDNSOpener opens each namespace as an mDNS group keyed by its
// sub-group's own key: the passphrase never reaches the LAN, and two
// namespaces are two unrelated service names. h's records are signed with
// its identity key and records about peer IDs without a valid signature
// are ignored, as in the slot rendezvous (passphrase.SlotOpener), so
// no member on the LAN can hide or impersonate another. It fails with
// mdnsdiscovery.ErrNoInterface on a machine without a multicast
// interface.
func MDNSOpener(h host.Host, g *slotdiscovery.Group, opts ...mdnsdiscovery.Option) libp2padapter.Opener {
	return func(ns string) (discovery.Discoverer, error) {
		all := append([]mdnsdiscovery.Option{
			mdnsdiscovery.WithIDSchemes(libp2padapter.IDSchemes()...),
			mdnsdiscovery.WithSigner(libp2padapter.HostSigner(h)),
		}, opts...)
		return mdnsdiscovery.New(g.Namespace(ns).DeriveKey(mdnsPurpose), all...)
	}
}

// bothOpener runs the slot rendezvous and mDNS as one
// (discovery.Combine). Where mDNS cannot run, it says so once and carries
// on with the slots alone: the relays still find everyone.
func bothOpener(slotsOpen, mdnsOpen libp2padapter.Opener, con *Console) libp2padapter.Opener {
	var warn sync.Once
	return func(ns string) (discovery.Discoverer, error) {
		sd, err := slotsOpen(ns)
		if err != nil {
			return nil, err
		}
		md, err := mdnsOpen(ns)
		if err != nil {
			if errors.Is(err, mdnsdiscovery.ErrNoInterface) {
				warn.Do(func() { con.Statusf("mDNS unavailable (%v): relays only", err) })
				return sd, nil
			}
			sd.Close(context.Background())
			return nil, err
		}
		return discovery.Combine(sd, md), nil
	}
}

// discoveryModule provides the Opener the configured mode needs, and
// Slots. Only the slot modes depend on the pkarr client, so in mDNS mode
// no client is built and no relay is touched.
func discoveryModule(cfg Config) fx.Option {
	var provide any
	switch cfg.Mode {
	case ModeMDNS:
		provide = func(h host.Host, g *slotdiscovery.Group) libp2padapter.Opener {
			return MDNSOpener(h, g, cfg.MDNSOptions...)
		}
	case ModeBoth:
		provide = func(h host.Host, c *pkarrclient.Client, g *slotdiscovery.Group, s *Slots, con *Console) libp2padapter.Opener {
			return bothOpener(SlotOpener(h, c, g, s, cfg.SlotOptions...), MDNSOpener(h, g, cfg.MDNSOptions...), con)
		}
	default:
		provide = func(h host.Host, c *pkarrclient.Client, g *slotdiscovery.Group, s *Slots) libp2padapter.Opener {
			return SlotOpener(h, c, g, s, cfg.SlotOptions...)
		}
	}
	return fx.Module("discovery", fx.Provide(newSlots, provide))
}
