package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// TestSlotsLocked: slots locked by timestamps at and beyond 2^63 µs (which
// an int64 conversion wraps into the past) show as locked, in both
// profiles, and --json still prints a line for each, its times saturated
// to the last instant JSON can carry. The packets go straight into the
// relay's store, as on a relay without a future check.
func TestSlotsLocked(t *testing.T) {
	store := pkarrrelay.NewMemoryStore(1000)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
		pkarrrelay.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	relay := srv.URL
	lock := func(sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, b *pkarrclient.Builder) {
		t.Helper()
		p, err := b.Timestamp(ts).Sign(sk)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	junk := func() *pkarrclient.Builder { return pkarrclient.NewBuilder().TXT("_junk", 300, "locked") }
	const pass = "amber lighthouse nineteen kites"
	const lastJSON = "9999-12-31T23:59:59.999999999Z"
	vars := map[string]string{passphraseEnv: pass}

	t.Run("default", func(t *testing.T) {
		g, err := slotdiscovery.DeriveGroup([]byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		lock(g.SlotKey(0), 1<<63, junk())
		lock(g.SlotKey(1), pkarrclient.MaxTimestamp, junk())
		code, stdout, stderr := runCLI(t, vars, "slots", "--relay", relay, "--slots", "3")
		if code != 0 {
			t.Fatalf("slots: exit %d: %s", code, stderr)
		}
		for i := range 2 {
			want := regexp.MustCompile(`(?m)^` + string(rune('0'+i)) + ` +` + g.SlotKey(i).PublicKey().String() + `  locked +\+`)
			if !want.MatchString(stdout) {
				t.Errorf("table lacks %s:\n%s", want, stdout)
			}
		}
		rows := slotsJSON(t, vars, "--relay", relay, "--slots", "3")
		if len(rows) != 3 {
			t.Fatalf("--json: %d rows, want 3: %+v", len(rows), rows)
		}
		for _, r := range rows[:2] {
			if r.State != "locked" || r.Packet == nil || *r.Packet != lastJSON || r.AgeSeconds == nil || *r.AgeSeconds >= 0 {
				t.Errorf("--json slot %d: %+v, want locked at %s", r.Index, r, lastJSON)
			}
		}
	})

	t.Run("can-sync", func(t *testing.T) {
		id := mustRandomID(t)
		lock(slotdiscovery.CanSyncSlotKey([]byte(pass), 0), pkarrclient.MaxTimestamp,
			pkarrclient.NewBuilder().TXT(slotdiscovery.CanSyncRecordName, 300, id))
		lock(slotdiscovery.CanSyncSlotKey([]byte(pass), 1), 1<<63+123_456_789, junk())
		code, stdout, stderr := runCLI(t, vars, "slots", "--profile", "can-sync", "--relay", relay)
		if code != 0 {
			t.Fatalf("slots: exit %d: %s", code, stderr)
		}
		key := func(i int) string { return slotdiscovery.CanSyncSlotKey([]byte(pass), i).PublicKey().String() }
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^0     ` + key(0) + `  locked +\+\S+\n      - live +\+\S+  ` + id + `$`),
			regexp.MustCompile(`(?m)^1     ` + key(1) + `  locked +\+\S+$`),
		} {
			if !want.MatchString(stdout) {
				t.Errorf("table lacks %s:\n%s", want, stdout)
			}
		}
		rows := slotsJSON(t, vars, "--profile", "can-sync", "--relay", relay)
		if len(rows) != slotdiscovery.CanSyncSlots {
			t.Fatalf("--json: %d rows, want %d", len(rows), slotdiscovery.CanSyncSlots)
		}
		if r := rows[0]; r.State != "locked" || len(r.Members) != 1 || r.Members[0].ID != id || r.Members[0].Seen != lastJSON {
			t.Errorf("--json slot 0: %+v, want locked holding %s seen %s", r, id, lastJSON)
		}
		if r := rows[1]; r.State != "locked" || len(r.Members) != 0 || r.Packet == nil || *r.Packet != lastJSON {
			t.Errorf("--json slot 1: %+v, want locked and empty", r)
		}
		if strings.Contains(stdout+stderr, pass) {
			t.Error("the passphrase was printed")
		}
	})
}
