package chat_test

import (
	"testing"

	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// TestStatusLinesUseNicks: once the room knows a member's nick, status
// lines about it name it by nick rather than by the end of its peer ID.
func TestStatusLinesUseNicks(t *testing.T) {
	m := discovery.NewMemory()
	swap := fx.Replace(libp2padapter.MemoryOpener(m))
	alice := start(t, testConfig("alice"), swap)
	bob := start(t, testConfig("bob"), swap)
	meet(t, alice, bob)
	alice.quit()
	bob.out.wait(t, "bob", line(`^\* alice left`))
	// Both lines come after the greeting, so the nick is known by then.
	bob.status.wait(t, "bob's status", line(`^-- lost alice via memory$`))
	bob.status.wait(t, "bob's status", line(`^-- disconnected from alice$`))
}
