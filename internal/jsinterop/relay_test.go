package jsinterop

import (
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// TestSameKeys: a seed gives the same public key and the same signed packet
// on both sides (Ed25519 is deterministic, and so is pkarr's encoding of a
// packet once the DNS bytes are fixed), so the other tests can hand keys
// across as seeds.
func TestSameKeys(t *testing.T) {
	js := startDriver(t)
	s := seed(t, "key")
	var kp struct {
		PublicKey string `json:"publicKey"`
	}
	js.must(t, "keypair", map[string]string{"seed": s}, &kp)
	if ours := secretKey(t, s).PublicKey().String(); kp.PublicKey != ours {
		t.Fatalf("JS key %s, ours %s", kp.PublicKey, ours)
	}
}

// TestGuard: the JS side's loopback guards are in place and refuse (checked
// without anything able to leave the machine, see guard.mjs's selfTest).
func TestGuard(t *testing.T) {
	js := startDriver(t)
	var st map[string]bool
	js.must(t, "guardSelfTest", nil, &st)
	for _, k := range []string{"lookupGuarded", "fetchGuarded", "datagramRefused", "lookupRefused", "fetchRefused"} {
		if !st[k] {
			t.Errorf("guard self-test: %s is false (%v)", k, st)
		}
	}
}

// TestRelayJSPublishesOursResolves: pkarr JS (Pkarr.relayPut) publishes to
// our relay, which accepts with 204; our relay client resolves and gets the
// JS side's bytes and records. Also at the size limit: a 1000-byte DNS
// message (a 1072-byte payload) is accepted and read back.
func TestRelayJSPublishesOursResolves(t *testing.T) {
	js := startDriver(t)
	url := startOurRelay(t)
	client := relayClient(t, url)

	for _, tc := range []struct {
		name  string
		padTo int
	}{{"records", 0}, {"1000-byte DNS", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			s := seed(t, "js")
			var put struct {
				Status int      `json:"status"`
				Body   string   `json:"body"`
				Packet jsPacket `json:"packet"`
			}
			js.must(t, "relayPut", signArgs{URL: url, Seed: s, Timestamp: ts(pkarrclient.Now()), Records: jsRecords(), PadTo: tc.padTo}, &put)
			if put.Status != http.StatusNoContent {
				t.Fatalf("our relay answered pkarr JS's PUT with %d %q, want 204", put.Status, put.Body)
			}
			got, err := client.Resolve(opContext(t), secretKey(t, s).PublicKey(), pkarrclient.NetworkOnly())
			if err != nil {
				t.Fatalf("our client resolving what JS published: %v", err)
			}
			checkJSPacket(t, got, put.Packet)
			if tc.padTo != 0 && len(got.DNS()) != tc.padTo {
				t.Errorf("DNS message is %d bytes, want %d", len(got.DNS()), tc.padTo)
			}
		})
	}
}

// TestRelayOursPublishesJSResolves: our client publishes to our relay;
// pkarr JS (Pkarr.relayGet, which verifies the signature) resolves it and
// dns-packet decodes our compressed names and split TXT strings.
func TestRelayOursPublishesJSResolves(t *testing.T) {
	js := startDriver(t)
	url := startOurRelay(t)
	client := relayClient(t, url)

	sk := secretKey(t, seed(t, "go"))
	p := goPacket(t, sk, pkarrclient.Now())
	if _, err := client.Publish(opContext(t), p); err != nil {
		t.Fatalf("our client publishing to our relay: %v", err)
	}
	var got jsPacket
	js.must(t, "relayGet", map[string]string{"url": url, "publicKey": sk.PublicKey().String()}, &got)
	checkGoPacket(t, got, p)

	t.Run("1000-byte DNS", func(t *testing.T) {
		sk := secretKey(t, seed(t, "go"))
		p := paddedGoPacket(t, sk, pkarrclient.Now(), 1000)
		if _, err := client.Publish(opContext(t), p); err != nil {
			t.Fatalf("our client publishing to our relay: %v", err)
		}
		var got jsPacket
		js.must(t, "relayGet", map[string]string{"url": url, "publicKey": sk.PublicKey().String()}, &got)
		if got.DNS != hex.EncodeToString(p.DNS()) {
			t.Errorf("JS got other DNS bytes (%d hex digits, want %d)", len(got.DNS), 2*len(p.DNS()))
		}
	})
}

// TestJSRelay: pkarr JS 1.3.0's own relay server (lib/relay.js) in front
// of our DHT nodes. It stores nothing: a PUT is a DHT put, a GET a DHT get,
// so every step crosses implementations twice.
//   - our relay client publishes through it (it answers 200, not 204); our
//     DHT client then finds the packet on our nodes, and our relay client
//     reads it back through the JS relay;
//   - pkarr JS publishes through it; our relay client resolves through it
//     and our DHT client straight from our nodes.
func TestJSRelay(t *testing.T) {
	js := startDriver(t)
	nw := mainlinetest.New(t, 3)
	var relay struct {
		URL     string `json:"url"`
		DHTAddr string `json:"dhtAddr"`
	}
	js.must(t, "relayServe", map[string]any{"name": "r", "bootstrap": nw.Addrs()}, &relay)
	client := relayClient(t, relay.URL)
	dhtClient, err := pkarrclient.NewClient([]pkarrclient.Backend{nw.NewClient()})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ours publishes", func(t *testing.T) {
		sk := secretKey(t, seed(t, "go"))
		p := goPacket(t, sk, pkarrclient.Now())
		res, err := client.Publish(opContext(t), p)
		if err != nil {
			t.Fatalf("our client publishing through the JS relay: %v (%+v)", err, res)
		}
		got, err := dhtClient.Resolve(opContext(t), sk.PublicKey(), pkarrclient.NetworkOnly())
		if err != nil {
			t.Fatalf("our DHT client resolving what the JS relay put: %v", err)
		}
		if !got.Equal(p) {
			t.Errorf("our DHT nodes hold %v, we published %v", got, p)
		}
		back, err := relayClient(t, relay.URL).Resolve(opContext(t), sk.PublicKey(), pkarrclient.NetworkOnly())
		if err != nil {
			t.Fatalf("our client resolving through the JS relay: %v", err)
		}
		if !back.Equal(p) {
			t.Errorf("the JS relay answered %v, we published %v", back, p)
		}
	})

	t.Run("JS publishes", func(t *testing.T) {
		s := seed(t, "js")
		var put struct {
			Status int      `json:"status"`
			Body   string   `json:"body"`
			Packet jsPacket `json:"packet"`
		}
		js.must(t, "relayPut", signArgs{URL: relay.URL, Seed: s, Timestamp: ts(pkarrclient.Now()), Records: jsRecords()}, &put)
		if put.Status != http.StatusOK {
			t.Fatalf("the JS relay answered pkarr JS's PUT with %d %q", put.Status, put.Body)
		}
		key := secretKey(t, s).PublicKey()
		got, err := client.Resolve(opContext(t), key, pkarrclient.NetworkOnly())
		if err != nil {
			t.Fatalf("our client resolving through the JS relay: %v", err)
		}
		checkJSPacket(t, got, put.Packet)
		got, err = dhtClient.Resolve(opContext(t), key, pkarrclient.NetworkOnly())
		if err != nil {
			t.Fatalf("our DHT client resolving what the JS relay put: %v", err)
		}
		checkJSPacket(t, got, put.Packet)
	})
}
