package passphrase

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"go.uber.org/fx"

	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// DefaultNamespace is the namespace Module advertises and auto-connects on
// when Config.Namespace is empty.
const DefaultNamespace = "phrasemeet"

// Secret is key material that must never be printed: every fmt verb and
// slog show it as "[redacted]". A []byte converts to it implicitly in a
// struct literal.
type Secret []byte

const redacted = "[redacted]"

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so no verb (%x, %d, %q...) shows the
// bytes.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler, so JSON and other encoders
// redact it too.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Config configures Module. Only Passphrase is required.
type Config struct {
	// Passphrase is what the group shares. Module copies it, runs the KDF
	// over the copy when the group is first needed, then wipes the copy;
	// it appears in no log and no error. Every app built from one Module
	// option shares the group that one run derived.
	Passphrase Secret
	// App salts the KDF (default slotdiscovery.DefaultApp). Use your own,
	// so unrelated programs whose users chose the same passphrase never
	// meet.
	App string
	// KDF overrides the Argon2id parameters (default
	// slotdiscovery.DefaultKDF). Every member of a group must use the same.
	KDF *slotdiscovery.KDFParams
	// Relays are the pkarr relays' base URLs (default
	// pkarrclient.DefaultRelays). Ignored when Client is set.
	Relays []string
	// Client, if set, is used instead of a client over Relays.
	Client *pkarrclient.Client
	// Namespace is where AutoConnect advertises this host and finds peers
	// (default DefaultNamespace). Namespaces used through the Adapter
	// directly, such as pubsub's, are independent of it.
	Namespace string
	// AutoConnect, when set, advertises the host in Namespace from start to
	// stop and runs a Connector that dials every peer found there.
	AutoConnect bool
	// AllowLoopback publishes loopback addresses (WithLoopback), for tests
	// and programs on one machine.
	AllowLoopback bool
	// DiscoveryName, when set, provides the adapter as a
	// core/discovery.Discovery named DiscoveryName (take it with the
	// struct tag `name:"<DiscoveryName>"`) instead of an unnamed one, so
	// an application that has a Discovery of its own (a DHT routing
	// discovery, say) builds. The name may not contain a double quote,
	// a backquote or a backslash. *Adapter is provided either way.
	DiscoveryName string
	// SlotOptions apply to every namespace's slot discoverer.
	SlotOptions []slotdiscovery.Option
	// AdapterOptions apply to the Adapter, after those Module derives from
	// the fields above.
	AdapterOptions []libp2padapter.Option
	// ConnectorOptions apply to the Connector when AutoConnect is set.
	ConnectorOptions []libp2padapter.ConnectorOption
	// Connectivity configures the *connectivity.Manager the module
	// provides for the application's host (see ProvideHost): static
	// circuit relays, the group relay, reachability, public ranges.
	Connectivity []connectivity.Option
}

// String describes c with the passphrase redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "passphrase.Config{Passphrase: %s, App: %q, Namespace: %q, Relays: %q, AutoConnect: %t, AllowLoopback: %t}",
		redacted, c.App, c.Namespace, c.Relays, c.AutoConnect, c.AllowLoopback)
	return b.String()
}

// GoString implements fmt.GoStringer, with the passphrase redacted.
func (c Config) GoString() string { return c.String() }

// Format implements fmt.Formatter: every verb prints String, so the
// passphrase cannot leak through %d or %x either.
func (c Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue implements slog.LogValuer, with the passphrase redacted.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Module returns an fx module for an application that provides a host.Host,
// ideally with ProvideHost:
//
//	fx.New(
//		passphrase.ProvideHost(), // or fx.Provide(newHost), your own host.Host
//		passphrase.Module(passphrase.Config{Passphrase: pass, App: "myapp", AutoConnect: true}),
//		...
//	)
//
// It provides:
//
//   - *slotdiscovery.Group, the passphrase's keys (the KDF runs in its
//     constructor), for instance to derive a secret pubsub topic name with
//     Group.DeriveKey;
//   - libp2padapter.Opener, the slot opener over the configured relays,
//     which signs the host's entries with its identity key (see
//     SlotOpener);
//   - *libp2padapter.Adapter and core/discovery.Discovery (the same adapter), for
//     pubsub.WithDiscovery and the like, closed on stop; the Discovery is
//     unnamed unless Config.DiscoveryName names it;
//   - with AutoConnect, *libp2padapter.Connector, started on start (after advertising
//     the host in Config.Namespace) and closed on stop;
//   - *connectivity.Manager, from Config.Connectivity, with the adapter attached
//     as its members once the adapter is built: build the host from its
//     Options, as ProvideHost does, so that it reaches members behind
//     NATs and serves the group relay. A host built otherwise simply does
//     without.
//
// Tests swap the rendezvous with
// fx.Replace(libp2padapter.MemoryOpener(m)), or fx.Decorate a different
// Opener; the KDF and relay client then never run.
// Module accepts an optional *slog.Logger from the application, for the
// adapter's and connector's debug logs.
func Module(cfg Config) fx.Option {
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	// Our own copy: wiping it after the KDF must not touch the caller's
	// bytes, and the caller changing theirs must not change the group.
	pass := slices.Clone([]byte(cfg.Passphrase))
	cfg.Passphrase = nil
	// Derived once however many apps are built from this Option (an
	// fx.ValidateApp before the fx.New, a test building two): the copy is
	// wiped after the first run, and a second KDF over the wiped bytes
	// would fail as a weak passphrase, or derive some other group.
	group := sync.OnceValues(func() (*slotdiscovery.Group, error) {
		var kopts []slotdiscovery.KeyOption
		if cfg.App != "" {
			kopts = append(kopts, slotdiscovery.WithApp(cfg.App))
		}
		if cfg.KDF != nil {
			kopts = append(kopts, slotdiscovery.WithKDF(*cfg.KDF))
		}
		g, err := slotdiscovery.DeriveGroup(pass, kopts...)
		clear(pass)
		if err != nil {
			// DeriveGroup's errors describe the passphrase (too
			// short...) but never quote it.
			return nil, fmt.Errorf("passphrase: deriving the group: %w", err)
		}
		return g, nil
	})
	// A quote or backslash would end or escape the struct tag fx reads
	// the name from: refuse it here rather than with fx's parse error.
	if strings.ContainsAny(cfg.DiscoveryName, "\"`\\") {
		return fx.Error(fmt.Errorf("%w: Config.DiscoveryName %q has a quote or backslash", libp2padapter.ErrInvalidOption, cfg.DiscoveryName))
	}
	asDiscovery := any(func(a *libp2padapter.Adapter) coredisc.Discovery { return a })
	if cfg.DiscoveryName != "" {
		asDiscovery = fx.Annotate(asDiscovery, fx.ResultTags(`name:"`+cfg.DiscoveryName+`"`))
	}
	opts := []fx.Option{
		fx.Provide(
			group,
			func(h host.Host, c *pkarrclient.Client, g *slotdiscovery.Group) libp2padapter.Opener {
				return SlotOpener(h, c, g, cfg.SlotOptions...)
			},
			func(in adapterIn) (*libp2padapter.Adapter, error) { return moduleAdapter(in, cfg) },
			asDiscovery,
			func() (*connectivity.Manager, error) {
				return connectivity.New(cfg.Connectivity...)
			},
		),

		// Private: an application may well have a pkarr client of its own.
		fx.Provide(func() (*pkarrclient.Client, error) { return moduleClient(cfg) }, fx.Private),
	}
	if cfg.AutoConnect {
		opts = append(opts,
			fx.Provide(func(in connectorIn) (*libp2padapter.Connector, error) {
				copts := cfg.ConnectorOptions
				if in.Logger != nil {
					copts = append([]libp2padapter.ConnectorOption{libp2padapter.ConnectLogger(in.Logger)}, copts...)
				}
				return libp2padapter.NewConnector(in.Host, in.Adapter.Subscriber(ns), copts...)
			}),
			fx.Invoke(func(lc fx.Lifecycle, a *libp2padapter.Adapter, c *libp2padapter.Connector) { autoConnect(lc, a, c, ns) }),
		)
	}
	return fx.Module("phrasemeet", opts...)
}

// ProvideHost provides the host.Host that Module needs: a libp2p host
// built from the module's *connectivity.Manager (TCP and QUIC, hole punching,
// AutoRelay over the group's relays, the group relay), with extra options
// after those, closed on stop.
//
//	fx.New(
//		passphrase.Module(passphrase.Config{Passphrase: pass, App: "myapp", AutoConnect: true}),
//		passphrase.ProvideHost(libp2p.UserAgent("myapp")),
//	)
func ProvideHost(extra ...libp2p.Option) fx.Option {
	return fx.Provide(func(lc fx.Lifecycle, c *connectivity.Manager) (host.Host, error) {
		h, err := libp2p.New(append(c.Options(), extra...)...)
		if err != nil {
			return nil, fmt.Errorf("passphrase: starting the libp2p host: %w", err)
		}
		lc.Append(fx.StopHook(h.Close))
		return h, nil
	})
}

type adapterIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Host      host.Host
	Opener    libp2padapter.Opener
	// The adapter's members are the ones the group relay admits and
	// AutoRelay picks relays from.
	Connectivity *connectivity.Manager
	Logger       *slog.Logger `optional:"true"`
}

type connectorIn struct {
	fx.In
	Host    host.Host
	Adapter *libp2padapter.Adapter
	Logger  *slog.Logger `optional:"true"`
}

// moduleClient is pkarrclient.NewRelayClient's client over Config.Relays,
// or the default relays.
func moduleClient(cfg Config) (*pkarrclient.Client, error) {
	if cfg.Client != nil {
		return cfg.Client, nil
	}
	urls := cfg.Relays
	if len(urls) == 0 {
		urls = pkarrclient.DefaultRelays()
	}
	c, err := pkarrclient.NewRelayClient(urls)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	return c, nil
}

func moduleAdapter(in adapterIn, cfg Config) (*libp2padapter.Adapter, error) {
	var opts []libp2padapter.Option
	if cfg.AllowLoopback {
		opts = append(opts, libp2padapter.WithLoopback())
	}
	if in.Logger != nil {
		opts = append(opts, libp2padapter.WithLogger(in.Logger))
	}
	a, err := libp2padapter.New(in.Host, in.Opener, append(opts, cfg.AdapterOptions...)...)
	if err != nil {
		return nil, err
	}
	in.Lifecycle.Append(fx.StopHook(a.Close))
	in.Connectivity.Attach(a)
	return a, nil
}

// autoConnect advertises the host and runs the connector from start to
// stop. Both get a context of their own, cancelled on stop: OnStart's
// context only bounds starting, and an advertisement tied to it would end
// as soon as start returned.
func autoConnect(lc fx.Lifecycle, a *libp2padapter.Adapter, c *libp2padapter.Connector, ns string) {
	var cancel context.CancelFunc
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			var run context.Context
			run, cancel = context.WithCancel(context.Background())
			if _, err := a.Advertise(run, ns); err != nil {
				cancel()
				return err
			}
			if err := c.Start(run); err != nil {
				cancel()
				return err
			}
			return nil
		},
		OnStop: func(context.Context) error {
			err := c.Close()
			cancel()
			return err
		},
	})
}
