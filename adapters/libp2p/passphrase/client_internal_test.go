package passphrase

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// The module's pkarr client is pkarrclient.NewRelayClient's: the same
// relays in the same order, the same requests on the wire, and for a bad
// URL the same error, which says which relay (by position: a URL may
// carry a password) and shows no password. With no Relays the module
// uses the default relays, as NewRelayClient(DefaultRelays()) does.
func TestModuleClientIsNewRelayClient(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s UA=%q Accept=%q", r.Method, r.URL.Path, r.UserAgent(), r.Header.Get("Accept")))
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(relay.Close)
	requests := func(c *pkarrclient.Client) []string {
		t.Helper()
		mu.Lock()
		seen = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		var key pkarrclient.PublicKey
		_, _ = c.Resolve(ctx, key) // not found; the requests are what counts
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(seen)
		slices.Sort(out)
		return out
	}
	names := func(c *pkarrclient.Client) []string {
		var out []string
		for _, b := range c.Backends() {
			out = append(out, b.Name())
		}
		return out
	}

	for _, urls := range [][]string{
		{relay.URL},
		{relay.URL + "/", relay.URL + "/pkarr", relay.URL},
		nil, // the default relays; nothing is sent to them here
	} {
		got, err := moduleClient(Config{Relays: urls})
		if err != nil {
			t.Fatalf("module, relays %q: %v", urls, err)
		}
		if urls == nil {
			urls = pkarrclient.DefaultRelays()
		}
		want, err := pkarrclient.NewRelayClient(urls)
		if err != nil {
			t.Fatalf("NewRelayClient(%q): %v", urls, err)
		}
		if g, w := names(got), names(want); !slices.Equal(g, w) {
			t.Errorf("relays %q: the module's client has backends %q, NewRelayClient's %q", urls, g, w)
		}
		if strings.HasPrefix(urls[0], relay.URL) {
			if g, w := requests(got), requests(want); !slices.Equal(g, w) {
				t.Errorf("relays %q: the module's client sends\n%q\nNewRelayClient's\n%q", urls, g, w)
			}
		}
	}

	for _, tc := range []struct {
		urls  []string
		which string
	}{
		{[]string{"https://relay.example", "ftp://user:hunter2@relay.example"}, "relay 2 of 2"},
		{[]string{"https://user:hunter2@/"}, "relay 1 of 1"},
		{[]string{"https://a.example", "https://user:hunter2@bad host", "https://c.example"}, "relay 2 of 3"},
	} {
		_, merr := moduleClient(Config{Relays: tc.urls})
		_, rerr := pkarrclient.NewRelayClient(tc.urls)
		if merr == nil || rerr == nil {
			t.Errorf("relays %q accepted: module %v, NewRelayClient %v", tc.urls, merr, rerr)
			continue
		}
		for who, err := range map[string]error{"the module": merr, "NewRelayClient": rerr} {
			if !strings.Contains(err.Error(), tc.which) {
				t.Errorf("relays %q: %s's error does not say %q: %v", tc.urls, who, tc.which, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("relays %q: %s's error shows the password: %v", tc.urls, who, err)
			}
		}
		if !strings.HasSuffix(merr.Error(), rerr.Error()) {
			t.Errorf("relays %q: the module's error %q is not NewRelayClient's %q", tc.urls, merr, rerr)
		}
	}
}
