package chat

import (
	"fmt"
	"reflect"
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

// Knows is only ever compared with our own peer ID, so an entry that can
// be no peer ID is dropped, and the bound applies to the entries kept.
func TestDecodeMessageBoundsKnows(t *testing.T) {
	const id = "12D3KooWPGVE7bDCUe4TwWRyu8mPw28h4UFiEPTZdgd1wx2u2zxR"
	knows := []string{strings.Repeat("x", maxKnowsID+1), "", id}
	for range maxKnows {
		knows = append(knows, id)
	}
	m, err := decodeMessage(wireMessage{Kind: kindHello, Nick: "n", Knows: knows}.encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Knows) != maxKnows {
		t.Fatalf("%d entries kept, want %d", len(m.Knows), maxKnows)
	}
	for i, k := range m.Knows {
		if k != id {
			t.Fatalf("entry %d is %.20q, want only the peer IDs", i, k)
		}
	}
}

// A message the decoder accepts encodes to one it accepts again, as is,
// even when sanitizing made it longer than what came in.
func TestDecodeMessageFixedPoint(t *testing.T) {
	// Raw '<' is one byte in, six (\u003c) out; the long Knows entries fill
	// the rest of maxWire.
	var b strings.Builder
	b.WriteString(`{"k":"hello","n":"n","t":"` + strings.Repeat("<", maxText) + `","kn":[`)
	for i := 0; b.Len() < maxWire-maxKnowsID-8; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q", fmt.Sprintf("%0*d", maxKnowsID, i))
	}
	b.WriteString("]}")
	if b.Len() > maxWire {
		t.Fatalf("test input of %d bytes", b.Len())
	}
	for _, in := range []string{b.String(), `{"k":"msg","n":"a\u0000b","t":"\ud800 \u2028<&>"}`} {
		m, err := decodeMessage([]byte(in))
		if err != nil {
			continue // refusing is fine; accepting something else is not
		}
		again, err := decodeMessage(m.encode())
		if err != nil {
			t.Fatalf("accepted %.40q..., whose own encoding (%d bytes) is refused: %v", in, len(m.encode()), err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("accepted %.40q..., which decodes differently once encoded", in)
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
