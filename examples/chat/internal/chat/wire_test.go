package chat

import (
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery/slotdiscovery"
)

func TestDecodeMessageDisarmsText(t *testing.T) {
	raw := wireMessage{Kind: kindText, Nick: "ev il\x1b[2J", Text: "line\nforged\x1b]0;title\x07\tend" + strings.Repeat("x", 3*maxText)}.encode()
	m, err := decodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{m.Nick, m.Text} {
		if strings.ContainsAny(s, "\n\r\x1b\x07\t") {
			t.Errorf("control characters survived: %q", s)
		}
	}
	if strings.Contains(m.Nick, " ") {
		t.Errorf("nick %q has a space: it would read as two words", m.Nick)
	}
	if n := len([]rune(m.Text)); n != maxText {
		t.Errorf("text of %d characters, want it cut to %d", n, maxText)
	}
	for _, bad := range []string{"", "{", `{"k":"launch"}`, strings.Repeat(" ", maxWire+1)} {
		if _, err := decodeMessage([]byte(bad)); err == nil {
			t.Errorf("decodeMessage(%.20q) accepted", bad)
		}
	}
}

func TestTopicNameFromKeys(t *testing.T) {
	kdf := slotdiscovery.WithKDF(slotdiscovery.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})
	group := func(p string) *slotdiscovery.Group {
		g, err := slotdiscovery.DeriveGroup([]byte(p), slotdiscovery.WithApp(App), kdf)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	const pass = "topic test passphrase words"
	a, b, other := TopicName(group(pass)), TopicName(group(pass)), TopicName(group(pass+"!"))
	if a != b {
		t.Fatalf("one passphrase, two topics: %q, %q", a, b)
	}
	if a == other {
		t.Fatal("two passphrases share a topic")
	}
	if strings.Contains(a, "topic") || strings.Contains(a, "passphrase") {
		t.Fatalf("topic %q shows the passphrase", a)
	}
	// The topic is not the group's namespace key either: pubsub's
	// discovery namespace for it is a sub-group of its own.
	if !strings.HasPrefix(a, "phrasemeet-chat/") || len(a) != len("phrasemeet-chat/")+32 {
		t.Fatalf("topic %q: want phrasemeet-chat/ and 32 base32 characters", a)
	}
}

func TestCleanNick(t *testing.T) {
	for in, ok := range map[string]bool{"alice": true, " bob ": true, "": false, "two words": false, "bell\a": false, strings.Repeat("n", 33): false} {
		if _, err := CleanNick(in); (err == nil) != ok {
			t.Errorf("CleanNick(%q): %v", in, err)
		}
	}
	id, err := peer.Decode("12D3KooWPGVE7bDCUe4TwWRyu8mPw28h4UFiEPTZdgd1wx2u2zxR")
	if err != nil {
		t.Fatal(err)
	}
	if got := DefaultNick(id); got != "peer-2u2zxR" {
		t.Errorf("DefaultNick = %q", got)
	}
}

func TestConfigNeverPrintsPassphrase(t *testing.T) {
	c := Config{Passphrase: []byte("secret words for the room"), Nick: "n"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if s := sprintf(verb, c); strings.Contains(s, "secret") || strings.Contains(s, "736563726574") {
			t.Errorf("%s shows the passphrase: %s", verb, s)
		}
	}
}

func sprintf(verb string, v any) string { return fmt.Sprintf(verb, v) }
