package passphrase_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/adapters/libp2p/passphrase"
	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// provideHost is how an application gives the module its host: a libp2p
// host on loopback, closed on stop.
func provideHost() fx.Option {
	return fx.Provide(func(lc fx.Lifecycle) (host.Host, error) {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			return nil, err
		}
		lc.Append(fx.StopHook(h.Close))
		return h, nil
	})
}

// fxLogs sends fx's own log to buf, so tests can check what it says.
func fxLogs(buf *safeBuffer) fx.Option {
	return fx.WithLogger(func() fxevent.Logger { return &fxevent.ConsoleLogger{W: buf} })
}

type app struct {
	*fx.App
	host    host.Host
	adapter *libp2padapter.Adapter
	disc    coredisc.Discovery
}

func newApp(t *testing.T, opts ...fx.Option) *app {
	t.Helper()
	a := &app{}
	a.App = fx.New(append(opts, provideHost(), fx.Populate(&a.host, &a.adapter, &a.disc))...)
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *app) start(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(context.Background()); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
}

// Two fx applications, one line of module each, find and connect to each
// other. The rendezvous is swapped for a Memory with fx.Replace.
func TestModuleWithMemoryOpener(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	var logs safeBuffer
	apps := make([]*app, 2)
	for i := range apps {
		apps[i] = newApp(t,
			fxLogs(&logs),
			fx.Supply(debugLogger(&logs)),
			passphrase.Module(passphrase.Config{
				Passphrase:    []byte("memory passphrase never used"),
				AutoConnect:   true,
				AllowLoopback: true,
			}),
			fx.Replace(libp2padapter.MemoryOpener(mem)),
		)
		if apps[i].disc != coredisc.Discovery(apps[i].adapter) {
			t.Error("Discovery and *Adapter are different values")
		}
	}
	conns := connectedness(t, apps[0].host)
	for _, a := range apps {
		a.start(t, ctx)
	}
	awaitConnected(t, ctx, apps[0].host, conns, apps[1].host.ID())
	if strings.Contains(logs.String(), "memory passphrase") {
		t.Error("the passphrase appears in the logs")
	}
}

// With the opener replaced, the KDF never runs: even a passphrase it would
// refuse starts the app.
func TestModuleReplacedOpenerSkipsKDF(t *testing.T) {
	ctx := testContext(t)
	a := newApp(t, fx.NopLogger,
		passphrase.Module(passphrase.Config{AutoConnect: true, AllowLoopback: true}),
		fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())))
	a.start(t, ctx)
}

// The real thing: two applications with the same passphrase meet through
// a pkarr relay on loopback and connect, and neither logs the passphrase.
func TestModuleMeetsThroughRelay(t *testing.T) {
	ctx := testContext(t)
	url := slottest.Relay(t)
	const pass = "correct horse battery staple"
	var logs safeBuffer
	cfg := passphrase.Config{
		Passphrase:    []byte(pass),
		App:           "phrasemeet-fx-test",
		KDF:           &slottest.CheapKDF,
		Relays:        []string{url},
		Namespace:     "fx-test",
		AutoConnect:   true,
		AllowLoopback: true,
		SlotOptions:   slottest.FastSchedule(),
	}
	apps := make([]*app, 2)
	for i := range apps {
		apps[i] = newApp(t, fxLogs(&logs), fx.Supply(debugLogger(&logs)), passphrase.Module(cfg))
	}
	conns := connectedness(t, apps[0].host)
	for _, a := range apps {
		a.start(t, ctx)
	}
	awaitConnected(t, ctx, apps[0].host, conns, apps[1].host.ID())
	for _, a := range apps {
		if err := a.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(logs.String(), pass) {
		t.Error("the passphrase appears in the logs")
	}
	if !strings.Contains(logs.String(), "peer cached") {
		t.Error("the adapter's debug log did not reach the application's logger")
	}
}

// The passphrase appears in no error, no log and no formatting of the
// configuration.
func TestModuleNeverShowsPassphrase(t *testing.T) {
	const pass = "Tr0ub4dor&3" // too short: DeriveGroup refuses it
	var logs safeBuffer
	cfg := passphrase.Config{Passphrase: []byte(pass), AutoConnect: true, Relays: []string{"http://127.0.0.1:1"}}
	// The host comes from outside the app: fx.New fails, so no OnStop hook
	// would ever close one made inside.
	h := newHost(t)
	app := fx.New(fxLogs(&logs), fx.Supply(debugLogger(&logs)),
		fx.Provide(func() host.Host { return h }), passphrase.Module(cfg))
	err := app.Err()
	if !errors.Is(err, slotdiscovery.ErrWeakPassphrase) {
		t.Fatalf("weak passphrase: %v, want ErrWeakPassphrase", err)
	}
	hexed := hex.EncodeToString([]byte(pass))
	js, jerr := json.Marshal(map[string]any{"passphrase": cfg.Passphrase})
	if jerr != nil {
		t.Fatal(jerr)
	}
	var slogged safeBuffer
	debugLogger(&slogged).Info("config", "cfg", cfg, "pass", cfg.Passphrase)
	for what, text := range map[string]string{
		"the error":  err.Error(),
		"the logs":   logs.String(),
		"formatting": fmt.Sprintf("%v %+v %#v %s %q %x %X %d", cfg, cfg, cfg, cfg, cfg, cfg, cfg, cfg),
		"the secret": fmt.Sprintf("%v %+v %#v %s %q %x %X %d %v", cfg.Passphrase, cfg.Passphrase, cfg.Passphrase, cfg.Passphrase, cfg.Passphrase, cfg.Passphrase, cfg.Passphrase, cfg.Passphrase, []any{cfg.Passphrase}),
		"JSON":       string(js),
		"slog":       slogged.String(),
	} {
		if strings.Contains(text, pass) || strings.Contains(strings.ToLower(text), hexed) {
			t.Errorf("the passphrase shows in %s: %s", what, text)
		}
	}
	if !strings.Contains(slogged.String(), "[redacted]") {
		t.Errorf("slog shows no redaction: %s", slogged.String())
	}
}

// One Module option may build several apps (fx.ValidateApp first, or a
// test's two peers): each gets the group of the passphrase, although the
// Module's copy of it is wiped after the first KDF.
func TestModuleOptionBuildsTwoApps(t *testing.T) {
	module := passphrase.Module(passphrase.Config{
		Passphrase: []byte("one option, two applications"),
		KDF:        &slottest.CheapKDF,
	})
	if err := fx.ValidateApp(fx.NopLogger, module, fx.Provide(func() host.Host { return nil })); err != nil {
		t.Fatalf("validating: %v", err)
	}
	groups := make([]*slotdiscovery.Group, 2)
	for i := range groups {
		app := fx.New(fx.NopLogger, module, fx.Populate(&groups[i]))
		if err := app.Err(); err != nil {
			t.Fatalf("app %d: %v", i+1, err)
		}
	}
	want, err := slotdiscovery.DeriveGroup([]byte("one option, two applications"), slotdiscovery.WithKDF(slottest.CheapKDF))
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range groups {
		if g.DeriveKey("probe") != want.DeriveKey("probe") {
			t.Errorf("app %d has another group than the passphrase's", i+1)
		}
	}
}

// A relay URL may carry credentials; an error about it shows them nowhere.
func TestModuleRelayErrorHidesCredentials(t *testing.T) {
	var opener libp2padapter.Opener
	app := fx.New(fx.NopLogger,
		passphrase.Module(passphrase.Config{
			Passphrase: []byte("a passphrase that is fine"),
			KDF:        &slottest.CheapKDF,
			Relays:     []string{"https://user:hunter2@/"},
		}),
		fx.Populate(&opener))
	err := app.Err()
	if err == nil {
		t.Fatal("a relay URL without a host was accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error shows the URL's password: %v", err)
	}
}

// An app whose construction fails after the adapter's (here the
// connector's, refusing its options) runs no stop hook: the adapter must
// not have started anything a stop hook would have ended.
func TestModuleFailedBuildLeavesNothingRunning(t *testing.T) {
	h := newHost(t)
	before := ourGoroutines()
	app := fx.New(fx.NopLogger,
		fx.Provide(func() host.Host { return h }),
		passphrase.Module(passphrase.Config{
			AutoConnect:      true,
			ConnectorOptions: []libp2padapter.ConnectorOption{libp2padapter.ConnectTimeout(0)},
		}),
		fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())))
	if err := app.Err(); !errors.Is(err, libp2padapter.ErrInvalidOption) {
		t.Fatalf("building with a bad connector option: %v, want ErrInvalidOption", err)
	}
	for id, stack := range ourGoroutines() {
		if _, ok := before[id]; !ok {
			t.Errorf("left running by the failed build:\n%s", stack)
		}
	}
}

// ourGoroutines returns, by goroutine number, the stacks of the goroutines
// running code of the adapter or of the discovery package. (goleak would
// also see the host's own goroutines, which start when they please.)
func ourGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n") // "goroutine 12 [select]:"
		if f := strings.Fields(header); len(f) > 1 &&
			(strings.Contains(g, "phrasemeet/discovery/adapters/libp2p.(") || strings.Contains(g, "phrasemeet/discovery.(")) {
			out[f[1]] = g
		}
	}
	return out
}

// The module's connectivity.Manager, used through ProvideHost, gives the host the
// group relay and AutoRelay over the members the module's adapter finds:
// a public member's relay admits the other members and no stranger, and
// a private member reserves a slot on it, through which a third member
// reaches it.
func TestModuleConnectivity(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	build := func(opts ...connectivity.Option) (host.Host, *connectivity.Manager) {
		var h host.Host
		var c *connectivity.Manager
		a := fx.New(fx.NopLogger,
			passphrase.Module(passphrase.Config{
				AutoConnect:   true,
				AllowLoopback: true,
				Connectivity:  append([]connectivity.Option{loopbackTCPQUIC, connectivity.WithRelayACLWait(0)}, opts...),
			}),
			passphrase.ProvideHost(libp2p.UserAgent("fx-connectivity-test")),
			fx.Replace(libp2padapter.MemoryOpener(mem)),
			fx.Populate(&h, &c),
		)
		(&app{App: a}).start(t, ctx)
		return h, c
	}
	public, pubConn := build(connectivity.WithReachability(connectivity.ReachabilityPublic))
	private, _ := build(connectivity.WithReachability(connectivity.ReachabilityPrivate), connectivity.WithGroupRelay(false))
	third, _ := build(connectivity.WithReachability(connectivity.ReachabilityPrivate), connectivity.WithGroupRelay(false))
	waitFor(t, ctx, "the relay service", func() bool { return servesRelay(public) })
	waitFor(t, ctx, "the relay admitting the members", func() bool {
		return pubConn.AllowReserve(private.ID(), nil) && pubConn.AllowReserve(third.ID(), nil)
	})
	if pubConn.AllowReserve(newHost(t).ID(), nil) {
		t.Error("the group relay admits a stranger")
	}
	if err := dialThrough(t, ctx, third, public, private.ID()); err != nil {
		t.Fatalf("a member does not reach the private member through the group relay: %v", err)
	}
}
