package chat

import (
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/phrasemeet/discovery/slotdiscovery"
)

// topicPurpose names the key the room's topic is derived from
// (Group.DeriveKey): unrelated to the slot keys and to every other
// purpose's key.
const topicPurpose = "chat-topic"

// TopicName is the room's pubsub topic: a name derived from the group's
// keys, so peers with the passphrase agree on it and nobody else learns
// the passphrase from it. Connected peers see it in pubsub's traffic; the
// relays never do (pubsub's discovery namespace "floodsub:" + topic
// becomes a sub-group whose slot keys are unrelated to the name).
func TopicName(g *slotdiscovery.Group) string {
	k := g.DeriveKey(topicPurpose)
	// 20 bytes of the key are plenty to tell rooms apart.
	return "phrasemeet-chat/" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(k[:20]))
}

// newGroup runs the KDF over the passphrase, once, and reports how long it
// took (it is the only deliberately slow step of joining) and the room's
// fingerprint. It wipes the
// passphrase, Options' private copy, once done: nothing else needs it.
func newGroup(cfg Config, con *Console) (*slotdiscovery.Group, error) {
	pass := cfg.Passphrase
	defer clear(pass)
	kdf := slotdiscovery.DefaultKDF()
	opts := []slotdiscovery.KeyOption{slotdiscovery.WithApp(App)}
	if cfg.KDF != nil {
		kdf = *cfg.KDF
		opts = append(opts, slotdiscovery.WithKDF(kdf))
	}
	start := time.Now()
	g, err := slotdiscovery.DeriveGroup(pass, opts...)
	if err != nil {
		// DeriveGroup's errors say what is wrong with a passphrase (too
		// short, too repetitive), never what it is.
		return nil, fmt.Errorf("deriving the room's keys: %w", err)
	}
	con.Statusf("keys derived in %s (Argon2id t=%d m=%dMiB p=%d)", roundDuration(time.Since(start)),
		kdf.Time, kdf.MemoryKiB/1024, kdf.Threads)
	// A line of the room, not a status line, so --quiet keeps it: a typo
	// in the passphrase is otherwise a separate, silently empty room, and
	// reading the fingerprints to each other is how people notice.
	con.Say("* room fingerprint %s (the others should see the same; if not, you typed different passphrases)", g.Fingerprint())
	return g, nil
}

// roundDuration shows a duration at a precision a person reads: "132ms",
// "1.4s".
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
