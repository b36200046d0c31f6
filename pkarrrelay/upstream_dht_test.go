package pkarrrelay

import (
	"bytes"
	"context"
	"crypto/sha1"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// TestRelaysShareOnlyTheDHT runs two relays whose only link is a private
// DHT on 127.0.0.1, with the real DHT backend as their upstream: a packet
// PUT on relay A is served by relay B; a newer packet published straight
// to the DHT replaces B's copy once that copy is older than its TTL; a key
// nobody published is 404 on B.
func TestRelaysShareOnlyTheDHT(t *testing.T) {
	nw := mainlinetest.New(t, 10)
	published := make(publishWatch, 10)
	a := newRelay(t, NewMemoryStore(100), WithUpstream(nw.NewClient()), published.option())
	b := newRelay(t, NewMemoryStore(100), WithUpstream(nw.NewClient()))

	sk := newSecretKey(t)
	p1 := sign(t, sk, tsAt(0), 300, "from relay A")
	wantStatus(t, a.putPacket(p1), http.StatusNoContent)
	if err := published.wait(t, sk.PublicKey()); err != nil {
		t.Fatalf("relay A's publish: %v", err)
	}
	// A republish (as clients keep records alive) learns how many DHT
	// nodes stored the packet.
	resp := a.putPacket(p1)
	wantStatus(t, resp, http.StatusNoContent)
	stored, err := strconv.Atoi(resp.Header.Get(HeaderDHTStoredNodes))
	if err != nil || stored < 1 {
		t.Fatalf("relay A's republish: %s = %q, want the number of DHT nodes that stored it",
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

// TestDHTPublishOutlivesThePUT: the relay's DHT client meets a node that
// does not answer (one that died after joining its routing table, or a
// stranger that pinged it claiming the key's own ID and went quiet) and
// waits out the library's 2 s resend delay for it. The PUT still answers
// once the packet is stored, inside a pkarr client's 2 s timeout, and the
// DHT publish finishes afterwards on its own time: the packet reaches the
// DHT.
func TestDHTPublishOutlivesThePUT(t *testing.T) {
	for _, trouble := range []string{"dead node", "stranger"} {
		t.Run(trouble, func(t *testing.T) {
			t.Parallel()
			nw := mainlinetest.New(t, 10)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// The library's default resend delay, as `relay --dht` runs.
			up := nw.NewClient(mainline.WithResendDelay(2 * time.Second))
			if _, err := up.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
			sk := newSecretKey(t)
			switch trouble {
			case "dead node":
				nw.Kill(0)
				nw.Kill(1)
			case "stranger":
				strangerPing(t, up.AddrPort(), sha1.Sum(sk.PublicKey().Bytes()))
			}
			r := newRelay(t, NewMemoryStore(100), WithUpstream(up), WithClock(clockwork.NewRealClock()))
			// One attempt with pkarr's usual 2 s timeout: the PUT must
			// not need a second.
			client, err := pkarrclient.NewRelay(r.base, pkarrclient.RelayRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			p := sign(t, sk, pkarrclient.Now(), 300, "published past a "+trouble)
			if _, err := client.Publish(ctx, p); err != nil {
				t.Errorf("PUT with a %s in the relay's routing table: %v", trouble, err)
			}
			// Found by a client of its own, straight from the DHT.
			reader := nw.NewClient()
			deadline := time.Now().Add(time.Minute)
			for {
				got, err := reader.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey(), MostRecent: true})
				if err == nil && got.Equal(p) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the packet never reached the DHT: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// strangerPing sends a KRPC ping to addr from a socket that then closes:
// the DHT client learns a node with the given ID that will never answer.
func strangerPing(t *testing.T, addr netip.AddrPort, id [20]byte) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "d1:ad2:id20:" + string(id[:]) + "e1:q4:ping1:t2:pp1:y1:qe"
	if _, err := c.WriteToUDPAddrPort([]byte(msg), addr); err != nil {
		t.Fatal(err)
	}
	// A full node would answer; this client is passive. Either way the
	// ping is handled before the socket goes away.
	time.Sleep(100 * time.Millisecond)
}
