package chat

import (
	"context"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestNobodyReachable: a line typed while the only member shown as here
// cannot be reached is answered "nobody got that: no one here can be
// reached right now", once the send's wait for a path ends (it is
// connected, so a path may open: Send waits), and at once when it is not
// connected at all; with nobody shown, the room is said to be empty.
func TestNobodyReachable(t *testing.T) {
	h, other := connectedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps, err := pubsub.NewFloodSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join("phrasemeet-test-room")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	con := &Console{out: &out}
	bob := &member{id: other.ID(), nick: "bob", greeted: true}
	r := &Room{h: h, topic: topic, nick: "me", con: con, members: map[peer.ID]*member{other.ID(): bob},
		relayed: make(map[peer.ID]*relayedStream)}
	const wait = 300 * time.Millisecond
	u := &UI{con: con, room: r, sendWait: wait}
	const nobody = "* nobody got that: no one here can be reached right now (see /peers)\n"

	// Connected, no path: Send waits for one, in vain.
	began := time.Now()
	u.line("anyone?")
	if got := out.String(); got != nobody {
		t.Errorf("typed with bob connected and no path to him: shown %q, want %q", got, nobody)
	}
	if took := time.Since(began); took < wait {
		t.Errorf("answered after %v: before the send's wait of %v ended", took, wait)
	}

	// Not connected: nothing to wait for.
	if err := h.Network().ClosePeer(other.ID()); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	u.line("still nobody?")
	if got := out.String(); got != nobody {
		t.Errorf("typed with bob not connected: shown %q, want %q", got, nobody)
	}

	// bob left: nobody is shown.
	r.mu.Lock()
	bob.greeted = false
	r.mu.Unlock()
	out.Reset()
	u.line("hello?")
	if got, want := out.String(), "* nobody else is in the room yet: nobody got that\n"; got != want {
		t.Errorf("typed alone: shown %q, want %q", got, want)
	}
}
