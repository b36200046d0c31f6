package chat_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/examples/chat/internal/chat"
)

// TestHostileNickOneSafeLine: a member of the room whose nick and line
// hold invalid UTF-8, escape sequences, newlines and far too many
// characters is shown, in the room's lines and in the status lines alike,
// as one line each, printable, without U+FFFD, by a nick cut to size.
func TestHostileNickOneSafeLine(t *testing.T) {
	mem := discovery.NewMemory()
	swap := fx.Replace(libp2padapter.MemoryOpener(mem))
	var room *chat.Room
	alice := start(t, testConfig("alice"), swap, fx.Populate(&room))

	// mallory: a host with pubsub, found in the room's namespace like any
	// member, that publishes what it likes.
	mh := newHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ad, err := libp2padapter.New(mh, libp2padapter.MemoryOpener(mem), libp2padapter.WithLoopback())
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	if _, err := ad.Advertise(ctx, "floodsub:"+room.Topic()); err != nil {
		t.Fatal(err)
	}
	ps, err := pubsub.NewFloodSub(ctx, mh)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(room.Topic())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	alice.status.wait(t, "alice's status", line(`^-- connected to %s `, shortIDOf(mh.ID())))

	// Raw bytes: invalid UTF-8 as it is, controls as JSON escapes.
	nick := "\xff\xfe\\u001b[31mevil\\u001b]0;pwned\\u0007\\nforged line\\r\\u202e\\ufffd" + strings.Repeat("x", 5000)
	text := "hi\\u001b[2J\\n* alice left\\u0000\xc3"
	joined := time.Now().UnixMilli()
	publish := func(m string) {
		t.Helper()
		if err := topic.Publish(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// Until alice shows it: the first may go before pubsub has a stream.
	shown := line(`^<\S+> hi`)
	for seq := 1; countLines(alice.out.String(), shown) == 0; seq++ {
		if ctx.Err() != nil {
			t.Fatalf("alice never showed mallory's line:\n%s\n%s", alice.out, alice.status)
		}
		publish(fmt.Sprintf(`{"k":"hello","n":"%s","j":%d,"q":%d}`, nick, joined, 2*seq))
		publish(fmt.Sprintf(`{"k":"msg","n":"%s","t":"%s","j":%d,"q":%d}`, nick, text, joined, 2*seq+1))
		time.Sleep(200 * time.Millisecond)
	}
	// Gone without a goodbye: a status line names it, by its nick cut to
	// 32 characters.
	mh.Close()
	shownNick := regexp.QuoteMeta("???[31mevil?]0;pwned??forged_lin")
	alice.status.wait(t, "alice's status", line(`^-- lost contact with %s, retrying quietly$`, shownNick))

	for what, text := range map[string]string{"room": alice.out.String(), "status": alice.status.String()} {
		if !utf8.ValidString(text) {
			t.Errorf("alice's %s lines are not valid UTF-8:\n%q", what, text)
		}
		for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			for _, r := range l {
				if r == utf8.RuneError || r != ' ' && !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S) {
					t.Errorf("alice's %s line %q carries %U", what, l, r)
					break
				}
			}
			if strings.Contains(l, "evil") && !regexp.MustCompile(`^(\* \S+ joined \(\S+\)|<\S+> hi\?\[2J\?\* alice left\?\?|-- lost contact with \S+, retrying quietly)$`).MatchString(l) {
				t.Errorf("alice's %s line about mallory %q is none of the lines expected", what, l)
			}
		}
	}
	if n := countLines(alice.out.String(), line(`^\* %s joined \(%s\)$`, shownNick, regexp.QuoteMeta(mh.ID().String()))); n != 1 {
		t.Errorf("alice showed mallory's arrival %d times, want once:\n%s", n, alice.out)
	}
	if countLines(alice.out.String(), line(`^\* alice left`)) != 0 {
		t.Errorf("mallory's newline forged a line:\n%s", alice.out)
	}
}
