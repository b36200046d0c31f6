package pkarrrelay

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	bolt "go.etcd.io/bbolt"
)

func TestBoltStorePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	ctx := context.Background()
	s := openBolt(t, path)
	var (
		keys    []*pkarrclient.SecretKey
		packets []*pkarrclient.SignedPacket
	)
	for i := range 10 {
		sk := newSecretKey(t)
		p := sign(t, sk, tsAt(time.Duration(i)*time.Second), uint32(300+i), "persist")
		mustPut(t, s, p, PutStored)
		keys = append(keys, sk)
		packets = append(packets, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path)
	if s.Len() != 10 {
		t.Fatalf("Len after reopen = %d, want 10", s.Len())
	}
	for i, p := range packets {
		rec, err := s.Get(ctx, p.PublicKey())
		if err != nil {
			t.Fatalf("packet %d lost across reopen: %v", i, err)
		}
		if !bytes.Equal(rec.Payload, p.RelayPayload()) || rec.Timestamp != p.Timestamp() || rec.TTL != uint32(300+i) {
			t.Fatalf("packet %d changed across reopen", i)
		}
	}
	// Ordering still holds against what was persisted.
	mustPut(t, s, packets[0], PutUnchanged)
	mustPut(t, s, sign(t, keys[0], tsAt(-time.Hour), 300, "old"), PutNotMostRecent)
}

func TestBoltStoreEvictsLeastRecentlyUsedAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	ctx := context.Background()
	keys := make([]*pkarrclient.SecretKey, 8)
	for i := range keys {
		keys[i] = newSecretKey(t)
	}
	put := func(s *BoltStore, i int) { mustPut(t, s, sign(t, keys[i], tsAt(0), 300, "x"), PutStored) }
	present := func(s *BoltStore) []bool {
		var out []bool
		for _, sk := range keys {
			_, err := s.Get(ctx, sk.PublicKey())
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			out = append(out, err == nil)
		}
		return out
	}

	s := openBolt(t, path, BoltMaxPackets(5))
	for i := range 5 {
		put(s, i)
	}
	// Reads of 0 and 1 are only in memory until Close flushes them.
	for _, i := range []int{0, 1} {
		if _, err := s.Get(ctx, keys[i].PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path, BoltMaxPackets(5))
	put(s, 5) // evicts 2
	put(s, 6) // evicts 3
	if s.Len() != 5 {
		t.Fatalf("Len = %d, want 5", s.Len())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBolt(t, path, BoltMaxPackets(5))
	got := present(s) // reads everything present: order among them is now 0 1 4 5 6
	want := []bool{true, true, false, false, true, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("present after eviction = %v, want %v", got, want)
		}
	}
	if s.Len() != 5 {
		t.Errorf("Len = %d", s.Len())
	}

	// Without any flush, eviction still sees a read made since the last one.
	if _, err := s.Get(ctx, keys[0].PublicKey()); err != nil {
		t.Fatal(err)
	}
	put(s, 7) // 0 was read last: evicts 1
	if _, err := s.Get(ctx, keys[1].PublicKey()); !errors.Is(err, ErrNotFound) {
		t.Errorf("key 1 survived eviction: %v", err)
	}
	if _, err := s.Get(ctx, keys[0].PublicKey()); err != nil {
		t.Errorf("recently read key 0 was evicted: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening with a smaller capacity trims the least recently used.
	s = openBolt(t, path, BoltMaxPackets(2))
	if s.Len() != 2 {
		t.Fatalf("Len after shrinking = %d, want 2", s.Len())
	}
	if _, err := s.Get(ctx, keys[0].PublicKey()); err != nil {
		t.Errorf("most recently used key 0 trimmed: %v", err)
	}
	if _, err := s.Get(ctx, keys[7].PublicKey()); err != nil {
		t.Errorf("recently stored key 7 trimmed: %v", err)
	}
}

func TestBoltStoreRecencyFlusher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	ctx := context.Background()
	s, err := OpenBoltStore(path, BoltMaxPackets(2), BoltRecencyFlushInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := newSecretKey(t), newSecretKey(t)
	mustPut(t, s, sign(t, a, tsAt(0), 300, "x"), PutStored)
	mustPut(t, s, sign(t, b, tsAt(0), 300, "x"), PutStored)
	if _, err := s.Get(ctx, a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.pending)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flusher never wrote the pending read")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mustPut(t, s, sign(t, newSecretKey(t), tsAt(0), 300, "x"), PutStored)
	if _, err := s.Get(ctx, b.PublicKey()); !errors.Is(err, ErrNotFound) {
		t.Errorf("b should have been evicted: %v", err)
	}
	if _, err := s.Get(ctx, a.PublicKey()); err != nil {
		t.Errorf("a (read, flushed) was evicted: %v", err)
	}
}

// corruptValue rewrites one packet's stored value with raw bbolt while the
// store is closed.
func corruptValue(t *testing.T, path string, key pkarrclient.PublicKey, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPackets).Put(key[:], value)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestBoltStoreCorruptValues(t *testing.T) {
	sk := newSecretKey(t)
	good := sign(t, sk, tsAt(0), 300, "x")
	valid := encodeValue(&Record{Payload: good.RelayPayload(), TTL: 300, Stored: time.Now()})
	cases := map[string][]byte{
		"empty":             {},
		"short header":      {valueFormat, 1, 2},
		"unknown format":    append([]byte{99}, valid[1:]...),
		"payload too short": valid[:valueHeaderSize+40],
		"payload too long":  append(bytes.Clone(valid), make([]byte, 1100)...),
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "relay.db")
			ctx := context.Background()
			s := openBolt(t, path)
			mustPut(t, s, good, PutStored)
			s.Close()
			corruptValue(t, path, sk.PublicKey(), value)

			s = openBolt(t, path)
			_, err := s.Get(ctx, sk.PublicKey())
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get of a corrupt value: %v, want ErrCorrupt", err)
			}
			// Over HTTP the damage is a 500, not a panic or bad bytes.
			r := newRelay(t, s)
			resp, _ := r.get(sk.PublicKey(), nil)
			wantStatus(t, resp, http.StatusInternalServerError)
			// An older packet than the damaged one is accepted: the damaged
			// bytes cannot be compared with, and a verified packet beats
			// nothing.
			repair := sign(t, sk, tsAt(-time.Hour), 300, "repair")
			mustPut(t, s, repair, PutStored)
			rec, err := s.Get(ctx, sk.PublicKey())
			if err != nil || !bytes.Equal(rec.Payload, repair.RelayPayload()) {
				t.Fatalf("after repair: %v", err)
			}
			if s.Len() != 1 {
				t.Errorf("Len = %d after repairing one value", s.Len())
			}
		})
	}
}

func TestBoltStoreDamagedMeta(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openBolt(t, path)
	for range 3 {
		mustPut(t, s, sign(t, newSecretKey(t), tsAt(0), 300, "x"), PutStored)
	}
	s.Close()

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaCount, []byte("junk")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = openBolt(t, path)
	if s.Len() != 3 {
		t.Errorf("Len after rebuilding the count = %d, want 3", s.Len())
	}
	s.Close()

	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaSchema, u64(2)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenBoltStore(path); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("opening schema 2: %v, want ErrSchemaVersion", err)
	}

	other := filepath.Join(t.TempDir(), "other.db")
	db, err = bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketPackets); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenBoltStore(other); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("opening a file without a schema marker: %v, want ErrSchemaVersion", err)
	}
}

func TestBoltStoreLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	openBolt(t, path)
	start := time.Now()
	_, err := OpenBoltStore(path, BoltLockTimeout(100*time.Millisecond))
	if err == nil {
		t.Fatal("a second store opened a locked file")
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("waited %v for the lock", time.Since(start))
	}
}

func TestBoltStoreOptionErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	for name, opt := range map[string]BoltOption{
		"capacity":       BoltMaxPackets(0),
		"flush interval": BoltRecencyFlushInterval(0),
		"batch delay":    BoltBatchDelay(-1),
		"lock timeout":   BoltLockTimeout(0),
		"logger":         BoltLogger(nil),
	} {
		if _, err := OpenBoltStore(path, opt); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := OpenBoltStore(filepath.Join(t.TempDir(), "missing-dir", "x.db")); err == nil {
		t.Error("opened a file in a missing directory")
	}
}

// TestBoltStoreConcurrentUse mixes Puts to many keys, Gets and evictions
// under the race detector.
func TestBoltStoreConcurrentUse(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "relay.db"), BoltMaxPackets(20))
	ctx := context.Background()
	keys := make([]*pkarrclient.SecretKey, 40)
	for i := range keys {
		keys[i] = newSecretKey(t)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 30 {
				sk := keys[(w*7+i)%len(keys)]
				p := sign(t, sk, tsAt(time.Duration(w*100+i)*time.Millisecond), 300, "x")
				if _, err := s.Put(ctx, p); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				if _, err := s.Get(ctx, keys[(w+i)%len(keys)].PublicKey()); err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("Get: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := s.flush(); err != nil {
				t.Errorf("flush: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	if n := s.Len(); n > 20 || n < 1 {
		t.Errorf("Len = %d, cap 20", n)
	}
	// The persisted count, the index and the packets agree.
	err := s.db.View(func(tx *bolt.Tx) error {
		count, _ := readCount(tx.Bucket(bucketMeta))
		packets := tx.Bucket(bucketPackets).Stats().KeyN
		access := tx.Bucket(bucketAccess).Stats().KeyN
		recency := tx.Bucket(bucketRecency).Stats().KeyN
		if int(count) != s.Len() || packets != s.Len() || access != s.Len() || recency != s.Len() {
			t.Errorf("count %d, Len %d, packets %d, access %d, recency %d", count, s.Len(), packets, access, recency)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeValue(f *testing.F) {
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	p, err := pkarrclient.NewBuilder().TXT("_f", 60, "fuzz").Timestamp(1).Sign(sk)
	if err != nil {
		f.Fatal(err)
	}
	valid := encodeValue(&Record{Payload: p.RelayPayload(), TTL: 60, Stored: time.Unix(1, 0)})
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{valueFormat})
	f.Add(valid[:valueHeaderSize+71])
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := decodeValue(v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if len(rec.Payload) < pkarrclient.PayloadHeaderSize || len(rec.Payload) > pkarrclient.MaxPayloadSize {
			t.Fatalf("decoded a payload of %d bytes", len(rec.Payload))
		}
		if !bytes.Equal(encodeValue(&rec), v) {
			t.Fatal("decode/encode does not round-trip")
		}
	})
}

// TestBoltStoreSyncsCommits pins the durability configuration: every commit
// is fsynced before Put returns. The SIGKILL test in cmd/phrasemeet cannot
// tell a synced write from one still in the page cache (the kernel keeps
// both across a process kill), so the setting itself is asserted here.
func TestBoltStoreSyncsCommits(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "relay.db"))
	if s.db.NoSync {
		t.Fatal("bbolt NoSync is set: acknowledged PUTs would not survive a power loss")
	}
	if s.db.MaxBatchDelay <= 0 || s.db.MaxBatchDelay > 10*time.Millisecond {
		t.Fatalf("batch delay %v: Put waits on it before every commit", s.db.MaxBatchDelay)
	}
}
