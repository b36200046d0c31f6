package pkarrrelay

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient/dhttest"
)

// TestRelaysShareOnlyTheDHT runs two relays whose only link is a private
// DHT on 127.0.0.1, with the real DHT backend as their upstream: a packet
// PUT on relay A is served by relay B; a newer packet published straight
// to the DHT replaces B's copy once that copy is older than its TTL; a key
// nobody published is 404 on B.
func TestRelaysShareOnlyTheDHT(t *testing.T) {
	nw := dhttest.New(t, 10)
	a := newRelay(t, NewMemoryStore(100), WithUpstream(nw.NewClient()))
	b := newRelay(t, NewMemoryStore(100), WithUpstream(nw.NewClient()))

	sk := newSecretKey(t)
	p1 := sign(t, sk, tsAt(0), 300, "from relay A")
	resp := a.putPacket(p1)
	wantStatus(t, resp, http.StatusNoContent)
	stored, err := strconv.Atoi(resp.Header.Get(HeaderDHTStoredNodes))
	if err != nil || stored < 1 {
		t.Fatalf("relay A's PUT: %s = %q, want the number of DHT nodes that stored it",
			HeaderDHTStoredNodes, resp.Header.Get(HeaderDHTStoredNodes))
	}

	resp, body := b.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusOK)
	wantBody(t, resp, body, p1)

	// A newer packet reaches the DHT without either relay.
	p2 := sign(t, sk, tsAt(time.Second), 300, "straight to the DHT")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := nw.NewClient().Publish(ctx, p2); err != nil {
		t.Fatalf("publish to the DHT: %v", err)
	}
	// Within its TTL, B answers from its store.
	resp, body = b.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p1)
	// Past it, B still answers at once with what it holds and refreshes
	// from the DHT in the background; a later GET gets the newer packet.
	b.clock.Advance(301 * time.Second)
	resp, body = b.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p1)
	for {
		resp, body = b.get(sk.PublicKey(), nil)
		if bytes.Equal(body, p2.RelayPayload()) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("relay B never refreshed its stale packet from the DHT")
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, _ = b.get(newSecretKey(t).PublicKey(), nil)
	wantStatus(t, resp, http.StatusNotFound)
}
