package passphrase_test

import (
	"errors"
	"testing"

	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/passphrase"
)

// An app that already has a core/discovery.Discovery (a DHT routing
// discovery, say) builds with the module when the module's is named.
func TestModuleNamedDiscovery(t *testing.T) {
	ctx := testContext(t)
	type other struct{ coredisc.Discovery }
	mine := other{}
	var got struct {
		fx.In
		Default coredisc.Discovery
		Named   coredisc.Discovery `name:"phrasemeet"`
	}
	a := newAppWith(t, []fx.Option{
		fx.NopLogger,
		fx.Provide(func() coredisc.Discovery { return mine }),
		passphrase.Module(passphrase.Config{DiscoveryName: "phrasemeet", AllowLoopback: true, AutoConnect: true}),
		fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())),
		fx.Populate(&got),
	})
	a.start(t, ctx)
	if got.Default != coredisc.Discovery(mine) {
		t.Error("the app's own Discovery was replaced")
	}
	if got.Named != coredisc.Discovery(a.adapter) {
		t.Error(`the Discovery named "phrasemeet" is not the module's adapter`)
	}
}

// A name that cannot be a struct tag value is refused with a clear error.
func TestModuleBadDiscoveryName(t *testing.T) {
	app := fx.New(fx.NopLogger, provideHost(),
		passphrase.Module(passphrase.Config{DiscoveryName: `a"b`}),
		fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())),
		fx.Invoke(func(*libp2padapter.Adapter) {}))
	if err := app.Err(); !errors.Is(err, libp2padapter.ErrInvalidOption) {
		t.Fatalf("app error = %v, want ErrInvalidOption", err)
	}
}

// newAppWith is newApp without the unnamed Discovery in its Populate.
func newAppWith(t *testing.T, opts []fx.Option) *app {
	t.Helper()
	a := &app{}
	a.App = fx.New(append(opts, provideHost(), fx.Populate(&a.host, &a.adapter))...)
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	return a
}
