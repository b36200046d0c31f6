package pkarrrelay

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// TestStoreContract runs the same behavioural checks against every Store.
func TestStoreContract(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := context.Background()
			s := kind.open(t, 100)
			sk := newSecretKey(t)
			key := sk.PublicKey()

			if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of an unknown key: %v, want ErrNotFound", err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, pkarrclient.ErrNotFound) {
				t.Fatalf("ErrNotFound does not match pkarrclient.ErrNotFound")
			}

			p1 := pkarrclient.NewBuilder().Timestamp(tsAt(0)).
				TXT("_a", 900, "one").TXT("_b", 450, "two").TXT("_c", 7200, "three")
			first, err := p1.Sign(sk)
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			mustPut(t, s, first, PutStored)
			rec, err := s.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Payload, first.RelayPayload()) || rec.Timestamp != first.Timestamp() || rec.TTL != 450 {
				t.Fatalf("record = ts %v ttl %d, want ts %v ttl 450 and the payload", rec.Timestamp, rec.TTL, first.Timestamp())
			}
			if rec.Stored.Before(before.Add(-time.Second)) || rec.Stored.After(time.Now().Add(time.Second)) {
				t.Errorf("Stored = %v, want about now", rec.Stored)
			}
			if s.Len() != 1 {
				t.Errorf("Len = %d, want 1", s.Len())
			}

			mustPut(t, s, first, PutUnchanged)
			older := sign(t, sk, tsAt(-time.Microsecond), 300, "older")
			mustPut(t, s, older, PutNotMostRecent)
			newer := sign(t, sk, tsAt(time.Microsecond), 300, "newer")
			mustPut(t, s, newer, PutStored)
			// Same timestamp: the lexicographically larger DNS message wins.
			tieLow := sign(t, sk, tsAt(time.Second), 300, "a")
			tieHigh := sign(t, sk, tsAt(time.Second), 300, "b")
			mustPut(t, s, tieHigh, PutStored)
			mustPut(t, s, tieLow, PutNotMostRecent)
			rec, _ = s.Get(ctx, key)
			if !bytes.Equal(rec.Payload, tieHigh.RelayPayload()) {
				t.Error("tie-break kept the wrong packet")
			}
			if s.Len() != 1 {
				t.Errorf("Len = %d after replacing one key's packet, want 1", s.Len())
			}

			// A packet without records has TTL 0.
			bare, err := pkarrclient.NewBuilder().Timestamp(tsAt(0)).Sign(newSecretKey(t))
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, s, bare, PutStored)
			if rec, _ := s.Get(ctx, bare.PublicKey()); rec.TTL != 0 {
				t.Errorf("TTL of a packet without records = %d", rec.TTL)
			}

			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.Put(cancelled, newer); !errors.Is(err, context.Canceled) {
				t.Errorf("Put with a cancelled context: %v", err)
			}
			if _, err := s.Get(cancelled, key); !errors.Is(err, context.Canceled) {
				t.Errorf("Get with a cancelled context: %v", err)
			}

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, ErrClosed) {
				t.Errorf("Get after Close: %v, want ErrClosed", err)
			}
			if _, err := s.Put(ctx, newer); !errors.Is(err, ErrClosed) {
				t.Errorf("Put after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func mustPut(t testing.TB, s Store, p *pkarrclient.SignedPacket, want PutOutcome) {
	t.Helper()
	got, err := s.Put(context.Background(), p)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got != want {
		t.Fatalf("Put(%v) = %v, want %v", p.Timestamp(), got, want)
	}
}

// TestStoreConcurrentPutsKeepNewest puts 1000 versions of one key from 1000
// goroutines at once, in random order, and reads concurrently.
func TestStoreConcurrentPutsKeepNewest(t *testing.T) {
	sk := newSecretKey(t)
	packets := signVersions(t, sk, 1000)
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t, 100)
			ctx := context.Background()
			order := rand.Perm(len(packets))
			start := make(chan struct{})
			var wg sync.WaitGroup
			outcomes := make([]PutOutcome, len(packets))
			errs := make([]error, len(packets))
			for _, i := range order {
				wg.Go(func() {
					<-start
					outcomes[i], errs[i] = s.Put(ctx, packets[i])
				})
			}
			for range 8 {
				wg.Go(func() {
					<-start
					for range 100 {
						rec, err := s.Get(ctx, sk.PublicKey())
						if err == nil {
							if _, err := pkarrclient.ParseRelayPayload(sk.PublicKey(), rec.Payload); err != nil {
								t.Errorf("concurrent Get returned a bad payload: %v", err)
								return
							}
						} else if !errors.Is(err, ErrNotFound) {
							t.Errorf("concurrent Get: %v", err)
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			stored := 0
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Put %d: %v", i, err)
				}
				switch outcomes[i] {
				case PutStored:
					stored++
				case PutNotMostRecent:
				default:
					t.Fatalf("Put %d: outcome %v", i, outcomes[i])
				}
			}
			if outcomes[len(packets)-1] != PutStored {
				t.Error("the newest packet was not stored")
			}
			rec, err := s.Get(ctx, sk.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			if want := packets[len(packets)-1]; rec.Timestamp != want.Timestamp() || !bytes.Equal(rec.Payload, want.RelayPayload()) {
				t.Fatalf("store holds %v, want the newest %v", rec.Timestamp, want.Timestamp())
			}
			if s.Len() != 1 {
				t.Errorf("Len = %d", s.Len())
			}
			t.Logf("%d of %d puts stored, the rest conflicted", stored, len(packets))
		})
	}
}

// signVersions signs n packets for one key with strictly increasing
// timestamps; packets[n-1] is the newest.
func signVersions(t testing.TB, sk *pkarrclient.SecretKey, n int) []*pkarrclient.SignedPacket {
	t.Helper()
	out := make([]*pkarrclient.SignedPacket, n)
	for i := range out {
		out[i] = sign(t, sk, tsAt(time.Duration(i-n)*time.Millisecond), 300, "v")
	}
	return out
}

func TestMemoryStoreEvictsLeastRecentlyUsed(t *testing.T) {
	s := NewMemoryStore(3)
	defer s.Close()
	ctx := context.Background()
	keys := make([]*pkarrclient.SecretKey, 5)
	for i := range keys {
		keys[i] = newSecretKey(t)
	}
	for _, sk := range keys[:3] {
		mustPut(t, s, sign(t, sk, tsAt(0), 300, "x"), PutStored)
	}
	if _, err := s.Get(ctx, keys[0].PublicKey()); err != nil { // 0 is now the most recent
		t.Fatal(err)
	}
	mustPut(t, s, sign(t, keys[3], tsAt(0), 300, "x"), PutStored) // evicts 1
	mustPut(t, s, sign(t, keys[4], tsAt(0), 300, "x"), PutStored) // evicts 2
	for i, want := range []bool{true, false, false, true, true} {
		_, err := s.Get(ctx, keys[i].PublicKey())
		if have := err == nil; have != want {
			t.Errorf("key %d present = %v, want %v", i, have, want)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d", s.Len())
	}
	if NewMemoryStore(0).lru == nil {
		t.Error("capacity 0 did not fall back to the default")
	}
}

func TestPutOutcomeString(t *testing.T) {
	for o, want := range map[PutOutcome]string{PutStored: "stored", PutUnchanged: "unchanged",
		PutNotMostRecent: "conflict", 0: "PutOutcome(0)"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), want)
		}
	}
}
