package chat

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/mdnsdiscovery"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// App is the application name salting the chat's key derivation: the same
// passphrase in another phrasemeet program is another group, so a chat
// never meets, say, `phrasemeet join` peers by accident.
const App = "phrasemeet-chat"

// DefaultLocalRelay is where "--relay local" looks for a relay, and
// starts one when none answers: the address `phrasemeet relay` listens on
// by default.
const DefaultLocalRelay = "127.0.0.1:6881"

// Mode says which discoverers find the room's members.
type Mode string

// The discovery modes.
const (
	// ModeSlots is the passphrase slot rendezvous over pkarr relays:
	// peers anywhere on the internet.
	ModeSlots Mode = "slots"
	// ModeMDNS is mDNS on the local network only; no relay is asked.
	ModeMDNS Mode = "mdns"
	// ModeBoth runs both, merged: a LAN peer is found in milliseconds, the
	// rest through the relays.
	ModeBoth Mode = "both"
)

// ParseMode parses a --discovery value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeSlots, ModeMDNS, ModeBoth:
		return m, nil
	}
	return "", fmt.Errorf("discovery %q: want slots, mdns or both", s)
}

// Config is what one chat needs besides its input and output. The
// passphrase is the only required field.
type Config struct {
	// Passphrase is what the room shares. The keys provider copies it,
	// runs the KDF over the copy and wipes the copy; it is never printed.
	Passphrase []byte
	// Nick prefixes this peer's lines (default: derived from the peer ID).
	Nick string
	// Mode selects the discoverers (default ModeSlots).
	Mode Mode
	// Relays are the pkarr relays' base URLs for the slot rendezvous. A
	// LocalRelay address is not among them: it is added by the client
	// provider. Empty with no LocalRelay means the public relays.
	Relays []string
	// LocalRelay, when set ("127.0.0.1:6881"), uses the relay at that
	// loopback address and serves one in this process whenever none
	// answers there.
	LocalRelay string
	// Listen are the host's listen multiaddrs, TCP or QUIC (default:
	// every interface, both).
	Listen []string
	// CircuitRelays are circuit relays (v2) this chat reserves a slot on
	// when it is not reachable from the internet, so that members reach
	// it through them and hole punch to a direct connection.
	CircuitRelays []peer.AddrInfo
	// NoGroupRelay keeps this chat from serving a circuit relay for the
	// room while it is publicly reachable (by default it does, for the
	// room's members only).
	NoGroupRelay bool
	// Reachability overrides how the chat finds out whether it is
	// reachable from the internet (default connectivity.ReachabilityAuto).
	Reachability connectivity.Reachability
	// PublicCIDRs are address ranges to treat as public, for a network
	// whose "internet" is a private range (connectivity.TreatAsPublic:
	// it changes process-wide state).
	PublicCIDRs []netip.Prefix
	// Loopback publishes the host's loopback addresses, for chats on one
	// machine; implied by LocalRelay.
	Loopback bool
	// KDF overrides the Argon2id parameters (tests only: every member of a
	// room must use the same).
	KDF *slotdiscovery.KDFParams
	// SlotOptions tune the slot rendezvous (tests shorten its schedule).
	SlotOptions []slotdiscovery.Option
	// MDNSOptions tune mDNS.
	MDNSOptions []mdnsdiscovery.Option
	// Quiet leaves out the discovery and connection status lines.
	Quiet bool
	// QuitLinger is how long /quit waits after saying goodbye before the
	// host closes, so the goodbye leaves before the connections go
	// (default 300 ms).
	QuitLinger time.Duration
}

// check validates c and fills in defaults.
func (c *Config) check() error {
	if len(c.Passphrase) == 0 {
		return errors.New("no passphrase")
	}
	if c.Mode == "" {
		c.Mode = ModeSlots
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.Nick != "" {
		nick, err := CleanNick(c.Nick)
		if err != nil {
			return err
		}
		c.Nick = nick
	}
	if c.LocalRelay != "" {
		c.Loopback = true
	}
	if c.Reachability == "" {
		c.Reachability = connectivity.ReachabilityAuto
	}
	if _, err := connectivity.ParseReachability(string(c.Reachability)); err != nil {
		return err
	}
	if c.QuitLinger <= 0 {
		c.QuitLinger = 300 * time.Millisecond
	}
	return nil
}

// String describes c without the passphrase, for errors and debugging.
func (c Config) String() string {
	return fmt.Sprintf("chat.Config{Passphrase: [redacted], Nick: %q, Mode: %s, Relays: %q, LocalRelay: %q, Listen: %q, CircuitRelays: %d, NoGroupRelay: %t, Reachability: %s, PublicCIDRs: %v}",
		c.Nick, c.Mode, c.Relays, c.LocalRelay, c.Listen, len(c.CircuitRelays), c.NoGroupRelay, c.Reachability, c.PublicCIDRs)
}

// GoString keeps %#v from printing the passphrase.
func (c Config) GoString() string { return c.String() }

// Format makes every verb print String, so no verb shows the passphrase.
func (c Config) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// IO is where a chat reads what the user types and writes what happens.
type IO struct {
	// In is read line by line; its end quits the chat, as /quit does.
	In io.Reader
	// Out gets the room: messages, join and leave notices, /peers.
	Out io.Writer
	// Status gets the discovery and connection status lines (standard
	// error in the command, so a pipe reading Out sees only the room).
	Status io.Writer
}

// maxNick bounds a nickname, in characters.
const maxNick = 32

// CleanNick checks a nickname given on the command line: printable, no
// spaces, at most 32 characters.
func CleanNick(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("empty nick")
	case len([]rune(s)) > maxNick:
		return "", fmt.Errorf("nick longer than %d characters", maxNick)
	case sanitize(s, maxNick) != s || strings.ContainsAny(s, " \t"):
		return "", errors.New("nick must be printable, without spaces")
	}
	return s, nil
}

// TestKDF returns a KDF that costs nothing, for tests and --test-fast
// only: a room derived with it is another room than the real one, and its
// keys are as cheap to guess as the passphrase.
func TestKDF() *slotdiscovery.KDFParams {
	return &slotdiscovery.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
}

// TestSchedule shrinks the slot rendezvous' periods, in the defaults'
// proportions, so chats in tests meet in well under a second. Every
// member of such a room must use it.
func TestSchedule() []slotdiscovery.Option {
	return []slotdiscovery.Option{
		slotdiscovery.WithScanInterval(200 * time.Millisecond),
		slotdiscovery.WithFastScan(50*time.Millisecond, 5*time.Second),
		slotdiscovery.WithRepublishInterval(500 * time.Millisecond),
		slotdiscovery.WithStaleAfter(3 * time.Second),
		slotdiscovery.WithVerifyDelay(5*time.Millisecond, 30*time.Millisecond),
		slotdiscovery.WithGetBudget(200, 400, 50),
		slotdiscovery.WithPutBudget(100, 20),
		// Every request shares this budget too; the default (1.9/s, a
		// deployed relay's) would hold the shrunk republish period back
		// past the stale bound.
		slotdiscovery.WithRequestBudget(500, 70),
	}
}
