package pkarrclient_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// TestRelayPublishRedirect checks that a relay answering a PUT with a
// redirect that net/http would turn into a GET is never reported as an
// accepted publish, with the Relay's own client or one the caller supplies.
// The redirects point at a real relay.
func TestRelayPublishRedirect(t *testing.T) {
	sk := pkarrclient.NewTestSecretKey(t)
	old := pkarrclient.TXTPacket(t, sk, testEpoch, "old", 300)
	p := pkarrclient.TXTPacket(t, sk, testEpoch+1, "new", 300)
	target := serveRelay(t, relayServerOptions{})
	target.put(t, old) // a GET of the key there answers 200

	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther} {
		redirector := scriptedServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+r.URL.Path, code)
		})
		for name, r := range map[string]*pkarrclient.Relay{
			"own client":    mustRelay(t, redirector.URL, pkarrclient.RelayRetries(0)),
			"caller client": newTestRelay(t, redirector.URL, pkarrclient.RelayRetries(0)),
		} {
			_, err := r.Publish(ctxFor(t), p)
			if !errors.Is(err, pkarrclient.ErrInvalidResponse) || !strings.Contains(err.Error(), "configure") {
				t.Errorf("%d, %s: err = %v, want ErrInvalidResponse naming the target", code, name, err)
			}
		}
	}
	if n := target.probe.puts.Load(); n != 0 {
		t.Fatalf("%d PUTs reached the target", n)
	}
	if !target.packet(t, sk.PublicKey()).Equal(old) {
		t.Fatal("target changed")
	}

	// 307 and 308 keep method and body: following them publishes.
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := scriptedServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+r.URL.Path, code)
		})
		if _, err := mustRelay(t, redirector.URL).Publish(ctxFor(t), p); err != nil {
			t.Fatalf("%d: %v", code, err)
		}
	}
	if !target.packet(t, sk.PublicKey()).Equal(p) {
		t.Fatal("a 307/308 publish did not reach the target")
	}
}

// mustRelay builds a Relay with its own default HTTP client (tests point it
// at 127.0.0.1 only).
func mustRelay(t *testing.T, url string, opts ...pkarrclient.RelayOption) *pkarrclient.Relay {
	t.Helper()
	r, err := pkarrclient.NewRelay(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
