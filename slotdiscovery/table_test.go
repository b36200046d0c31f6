package slotdiscovery_test

import (
	"errors"
	"golang.org/x/time/rate"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// TestReadTableEmptyNeedsAMajority: a slot no relay holds a packet for is
// empty only when most relays said so; one relay's 404 while the others
// are down is unreadable, with the reason.
func TestReadTableEmptyNeedsAMajority(t *testing.T) {
	g := slottest.Group(t, "table majority passphrase")
	honest, dead := slottest.Relay(t), slottest.DeadRelay(t)
	cases := []struct {
		urls []string
		want slotdiscovery.SlotState
	}{
		{[]string{honest}, slotdiscovery.SlotEmpty},
		{[]string{honest, dead}, slotdiscovery.SlotUnreadable},
		{[]string{honest, dead, dead}, slotdiscovery.SlotUnreadable},
		{[]string{honest, honest, dead}, slotdiscovery.SlotEmpty},
		{[]string{dead}, slotdiscovery.SlotUnreadable},
	}
	for _, tc := range cases {
		c := slottest.ClientWith(t, tc.urls, pkarrclient.RelayRetries(0))
		infos, err := slotdiscovery.ReadTable(t.Context(), c, g)
		if err != nil {
			t.Fatal(err)
		}
		if got := infos[0].State; got != tc.want {
			t.Errorf("%d relays, %d dead: slot 0 %s (%v), want %s", len(tc.urls), countOf(tc.urls, dead), got, infos[0].Err, tc.want)
		}
		if tc.want == slotdiscovery.SlotUnreadable && !errors.Is(infos[0].Err, pkarrclient.ErrUnavailable) {
			t.Errorf("unreadable slot's error %v does not tell that a relay is unavailable", infos[0].Err)
		}
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestReadTableBudget: a group whose first six levels (63 slots) are
// locked a year ahead makes the table walk down to level 6; the reads go
// out at most a burst at a time, and the walk stops at TableMaxSlots.
func TestReadTableBudget(t *testing.T) {
	g := slottest.Group(t, "table budget passphrase")
	locked := lockedAhead(t, g, 63)
	frozen := slottest.FrozenRelay(t, locked...)
	var mu sync.Mutex
	inFlight, most, total := 0, 0, 0
	url := slottest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		total++
		most = max(most, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		time.Sleep(time.Millisecond) // let reads that went out together overlap
		http.Redirect(w, r, frozen+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	// The redirect keeps the count on this handler, the packets on the
	// frozen relay: each read is one request here.
	c := slottest.Client(t, url)
	infos, err := slotdiscovery.ReadTable(t.Context(), c, g, slotdiscovery.TableBudget(rate.Inf, 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 127 || infos[62].State != slotdiscovery.SlotLocked || infos[63].State != slotdiscovery.SlotEmpty {
		t.Fatalf("read %d slots (62: %s, 63: %s), want levels 0-6, locked down to 62", len(infos), infos[62].State, infos[min(63, len(infos)-1)].State)
	}
	if most > 4 || total != 127 {
		t.Errorf("%d GETs, at most %d in flight; want 127, at most the burst of 4", total, most)
	}

	infos, err = slotdiscovery.ReadTable(t.Context(), c, g, slotdiscovery.TableBudget(rate.Inf, 4), slotdiscovery.TableMaxSlots(31))
	if !errors.Is(err, slotdiscovery.ErrTableTruncated) || len(infos) != 31 {
		t.Fatalf("TableMaxSlots(31): %d slots, %v; want 31 and ErrTableTruncated", len(infos), err)
	}
	infos, err = slotdiscovery.ReadTable(t.Context(), c, g, slotdiscovery.TableBudget(rate.Inf, 4),
		slotdiscovery.TableMaxSlots(31), slotdiscovery.TableMinSlots(64))
	if err != nil || len(infos) != 127 {
		t.Fatalf("TableMinSlots(64) over TableMaxSlots(31): %d slots, %v; want 127", len(infos), err)
	}
}
