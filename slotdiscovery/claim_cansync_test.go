package slotdiscovery_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// TestCanSyncClaimSkipsASlotItCannotWrite: can-sync's claim takes the first
// empty slot it can write; a write that fails (here the relay refuses
// slot 0) moves it on to the next empty slot rather than ending the claim.
func TestCanSyncClaimSkipsASlotItCannotWrite(t *testing.T) {
	store := pkarrrelay.NewMemoryStore(1000)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store, pkarrrelay.WithWriteRateLimit(rate.Inf, 0), pkarrrelay.WithReadRateLimit(rate.Inf, 0))
	if err != nil {
		t.Fatal(err)
	}
	refused := "/" + slotdiscovery.CanSyncSlotKey([]byte(csPassphrase), 0).PublicKey().String()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPut && req.URL.Path == refused {
			http.Error(w, "refused by the test", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test relay is not on loopback: %s", srv.URL)
	}
	r := &csRelay{srv: srv, url: srv.URL}
	ctx := csCtx(t)
	observer := r.client(t)
	id := csID("claimer")
	cs := newCanSync(t, r.client(t), csPassphrase, csFastSchedule()...)
	if _, err := cs.Announce(ctx, discovery.Record{ID: id}); err != nil {
		t.Fatal(err)
	}
	csAwaitSlot(t, ctx, observer, csPassphrase, 1, id, 0)
}
