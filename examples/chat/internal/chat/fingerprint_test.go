package chat_test

import (
	"regexp"
	"testing"

	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/examples/chat/internal/chat"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// TestFingerprintShown: the chat shows the room's fingerprint as a line
// of the room (so --quiet keeps it), the group's own; a passphrase with a
// typo shows another, which is how two people on the phone notice that
// they are in two separate, empty rooms.
func TestFingerprintShown(t *testing.T) {
	g, err := slotdiscovery.DeriveGroup([]byte(passphrase), slotdiscovery.WithApp(chat.App), slotdiscovery.WithKDF(*chat.TestKDF()))
	if err != nil {
		t.Fatal(err)
	}
	want := g.Fingerprint()

	cfg := testConfig("alice")
	cfg.Quiet = true
	alice := start(t, cfg, fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())))
	alice.out.wait(t, "alice", line(`^\* room fingerprint %s `, regexp.QuoteMeta(want)))

	typo := testConfig("bob")
	typo.Passphrase = []byte(passphrase + "s")
	bob := start(t, typo, fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())))
	got := bob.out.wait(t, "bob", line(`^\* room fingerprint (\S+) `))[1]
	if got == want {
		t.Fatalf("a passphrase with a typo shows the same fingerprint %s", got)
	}
	alice.assertNoPassphrase()
	bob.assertNoPassphrase()
}
