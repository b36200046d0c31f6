package pkarrrelay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	bolt "go.etcd.io/bbolt"
)

// Damaged bbolt files: whatever the damage, OpenBoltStore either refuses
// the file with a one-line error matching ErrDamaged, or opens it and then
// every Get, Put and Close returns (an error at worst); nothing panics and
// nothing faults. A fault would kill the test binary, which is how these
// tests fail on code that lets one through.

// damageFixture is a store file with packets in several leaf pages of each
// bucket, built once and copied for each case.
type damageFixture struct {
	file    []byte
	packets []*pkarrclient.SignedPacket
	// later holds, for the first keys, newer packets than the file has,
	// and packets for keys the file does not know: what exercise writes.
	later []*pkarrclient.SignedPacket
}

var (
	damageOnce sync.Once
	damageFix  damageFixture
	damageErr  error
)

func damagedFixture(t *testing.T) *damageFixture {
	t.Helper()
	damageOnce.Do(func() {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("pkarrrelay-damage-%d.db", rand.Uint64()))
		defer os.Remove(path)
		s, err := OpenBoltStore(path, BoltBatchDelay(time.Millisecond), BoltRecencyFlushInterval(time.Hour))
		if err != nil {
			damageErr = err
			return
		}
		for i := range 120 {
			sk := seededSecretKey(t, uint64(i))
			p := sign(t, sk, tsAt(time.Duration(i)*time.Millisecond), 300, strings.Repeat("v", 600))
			if _, err := s.Put(context.Background(), p); err != nil {
				damageErr = err
				s.Close()
				return
			}
			damageFix.packets = append(damageFix.packets, p)
			if i < 20 {
				damageFix.later = append(damageFix.later, sign(t, sk, tsAt(time.Minute+time.Duration(i)), 300, "newer"),
					sign(t, seededSecretKey(t, uint64(1000+i)), tsAt(0), 300, "new"))
			}
		}
		// Reads leave recency updates for Close to write: the file then
		// holds freed pages too.
		for _, p := range damageFix.packets[:40] {
			s.Get(context.Background(), p.PublicKey())
		}
		if err := s.Close(); err != nil {
			damageErr = err
			return
		}
		damageFix.file, damageErr = os.ReadFile(path)
	})
	if damageErr != nil {
		t.Fatal(damageErr)
	}
	return &damageFix
}

// bbolt page header: id u64 | flags u16 | count u16 | overflow u32.
const (
	boltPageBranch   = 0x01
	boltPageLeaf     = 0x02
	boltPageMeta     = 0x04
	boltPageFreelist = 0x10
)

// pagesByKind returns the page numbers of file by their header flags.
func pagesByKind(file []byte, pageSize int) map[uint16][]int {
	out := map[uint16][]int{}
	for pg := 0; (pg+1)*pageSize <= len(file); pg++ {
		flags := binary.LittleEndian.Uint16(file[pg*pageSize+8:])
		out[flags] = append(out[flags], pg)
	}
	return out
}

type damageCase struct {
	name   string
	damage func(file []byte) []byte
	// refuse, when set, is what the open must fail with.
	refuse string
}

func damageCases(t *testing.T, f *damageFixture) []damageCase {
	const pageSize = 4096
	if len(f.file)%pageSize != 0 || binary.LittleEndian.Uint32(f.file[16+8:]) != pageSize {
		t.Fatalf("fixture: file of %d bytes, page size %d; the cases assume 4096",
			len(f.file), binary.LittleEndian.Uint32(f.file[16+8:]))
	}
	kinds := pagesByKind(f.file, pageSize)
	// The current meta is the one with the higher transaction ID; it
	// names the freelist page and the high-water mark (past which the
	// file is preallocated, not used).
	meta := f.file[16:]
	if m1 := f.file[pageSize+16:]; binary.LittleEndian.Uint64(m1[48:]) > binary.LittleEndian.Uint64(meta[48:]) {
		meta = m1
	}
	freelist := int(binary.LittleEndian.Uint64(meta[32:])) * pageSize
	used := int(binary.LittleEndian.Uint64(meta[40:])) * pageSize
	if n := binary.LittleEndian.Uint16(f.file[freelist+10:]); n == 0 || n == 0xFFFF {
		t.Fatalf("fixture: freelist of %d entries, want a few", n)
	}
	cases := []damageCase{
		{"empty", func([]byte) []byte { return nil }, ""},
		{"garbage 100 bytes", func([]byte) []byte { return junk(1, 100) }, "store file damaged: invalid database"},
		{"garbage 64 KiB", func([]byte) []byte { return junk(2, 64<<10) }, "store file damaged: invalid database"},
		{"garbage after valid metas", func(b []byte) []byte {
			return append(b[:2*pageSize:2*pageSize], junk(3, len(b)-2*pageSize)...)
		}, "store file damaged"},
		// Only bbolt's consistency check sees this: the page the entry
		// named is neither in use nor free.
		{"freelist forgets a free page", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[freelist+10:], binary.LittleEndian.Uint16(b[freelist+10:])-1)
			return b
		}, "unreachable unfreed"},
	}
	// A live branch page whose first child is itself: a cycle, which
	// bbolt's cursor and consistency check would follow for ever.
	free := map[int]bool{}
	for i := range int(binary.LittleEndian.Uint16(f.file[freelist+10:])) {
		free[int(binary.LittleEndian.Uint64(f.file[freelist+16+8*i:]))] = true
	}
	for _, pg := range kinds[boltPageBranch] {
		if free[pg] {
			continue
		}
		cases = append(cases, damageCase{fmt.Sprintf("branch page %d is its own first child", pg), func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[pg*pageSize+16+8:], uint64(pg))
			return b
		}, "page " + fmt.Sprint(pg) + " reached twice"})
		break
	}
	cases = append(cases, damageCase{"truncated inside the second meta", func(b []byte) []byte { return b[:pageSize+100] },
		"store file damaged: file size too small"})
	for _, n := range []int{2 * pageSize, 3 * pageSize, used / pageSize / 2 * pageSize, used - 1} {
		cases = append(cases, damageCase{fmt.Sprintf("truncated to %d of %d bytes", n, len(f.file)),
			func(b []byte) []byte { return b[:n] }, fmt.Sprintf("store file damaged: truncated to %d bytes", n)})
	}
	// Past the high-water mark the file is only preallocated space.
	for _, n := range []int{used, len(f.file) - 1} {
		cases = append(cases, damageCase{fmt.Sprintf("preallocated tail cut to %d of %d bytes", n, len(f.file)),
			func(b []byte) []byte { return b[:n] }, ""})
	}
	// Bit flips in each kind of page: the header's fields, the first
	// element's offsets and sizes, and deep inside.
	rng := rand.New(rand.NewPCG(7, 7))
	var picked []int
	for _, kind := range []uint16{boltPageMeta, boltPageFreelist, boltPageBranch, boltPageLeaf} {
		pgs := kinds[kind]
		if len(pgs) == 0 {
			if kind == boltPageBranch || kind == boltPageMeta || kind == boltPageLeaf {
				t.Fatalf("fixture has no page of kind %#x: %v", kind, kinds)
			}
			continue
		}
		n := min(len(pgs), 3)
		for range n {
			picked = append(picked, pgs[rng.IntN(len(pgs))])
		}
	}
	for _, pg := range picked {
		for _, off := range []int{0, 8, 10, 12, 16, 16 + 4, 16 + 8, 16 + 12, 100, 2000} {
			for _, bit := range []byte{0x01, 0x80} {
				at := pg*pageSize + off
				cases = append(cases, damageCase{fmt.Sprintf("bit %#x flipped at %d (page %d kind %#x, +%d)",
					bit, at, pg, binary.LittleEndian.Uint16(f.file[pg*pageSize+8:]), off),
					func(b []byte) []byte { b[at] ^= bit; return b }, ""})
			}
		}
	}
	return cases
}

func junk(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

func TestBoltStoreDamagedFile(t *testing.T) {
	f := damagedFixture(t)
	var opened, refused int
	for _, tc := range damageCases(t, f) {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "relay.db")
			if err := os.WriteFile(path, tc.damage(bytes.Clone(f.file)), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenBoltStore(path, BoltBatchDelay(time.Millisecond), BoltRecencyFlushInterval(time.Hour),
				BoltLockTimeout(time.Second))
			if tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)) {
				t.Errorf("open: %v, want an error with %q", err, tc.refuse)
			}
			if err != nil {
				refused++
				msg := err.Error()
				t.Logf("refused: %s", msg)
				if !errors.Is(err, ErrDamaged) && tc.name != "empty" {
					t.Errorf("refused with an error not matching ErrDamaged: %v", err)
				}
				if strings.Contains(msg, "\n") || len(msg)-len(path) > 300 || strings.Contains(msg, "goroutine") {
					t.Errorf("error is not one short line: %q", msg)
				}
				// The file is not held: a second try fails the same way,
				// not on the lock.
				if _, err2 := OpenBoltStore(path, BoltLockTimeout(100*time.Millisecond)); err2 == nil ||
					strings.Contains(err2.Error(), "locked") {
					t.Errorf("second open: %v", err2)
				}
				return
			}
			opened++
			exercise(t, s, f)
		})
	}
	t.Logf("%d damaged files refused at open, %d opened and served without panicking", refused, opened)
}

// exercise reads every packet, writes new and newer ones and closes the
// store; errors are allowed, panics are not.
func exercise(t *testing.T, s *BoltStore, f *damageFixture) {
	t.Helper()
	ctx := context.Background()
	var getErrs, putErrs int
	for _, p := range f.packets {
		rec, err := s.Get(ctx, p.PublicKey())
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			getErrs++
		case len(rec.Payload) < pkarrclient.PayloadHeaderSize:
			t.Fatalf("Get returned a %d-byte payload without an error", len(rec.Payload))
		}
	}
	for _, p := range f.later {
		if _, err := s.Put(ctx, p); err != nil {
			putErrs++
		}
	}
	s.Close()
	if getErrs+putErrs > 0 {
		t.Logf("opened; %d Gets and %d Puts failed cleanly", getErrs, putErrs)
	}
}

// TestBoltStoreDamagedWhileOpen: pages damaged under a running store (the
// file is shared with the mapping, as a failing disk or another writer
// would damage it) turn GETs and PUTs into 500s; the relay keeps serving.
func TestBoltStoreDamagedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openBolt(t, path)
	sk := newSecretKey(t)
	for i := range 50 {
		key := sk
		if i > 0 {
			key = newSecretKey(t)
		}
		mustPut(t, s, sign(t, key, tsAt(0), 300, strings.Repeat("v", 600)), PutStored)
	}
	r := newRelay(t, s)
	resp, _ := r.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusOK)

	// Every page but the metas and the freelist becomes junk. (A damaged
	// freelist page is TestBoltStoreWedged's case.)
	junkPages(t, path, false)

	for range 3 {
		resp, body := r.get(sk.PublicKey(), nil)
		wantStatus(t, resp, http.StatusInternalServerError)
		if bytes.Contains(body, []byte("goroutine")) {
			t.Errorf("500 body leaks a trace: %q", body)
		}
		resp = r.putPacket(sign(t, sk, tsAt(time.Second), 300, "after the damage"))
		wantStatus(t, resp, http.StatusInternalServerError)
	}
	_, err := s.Get(context.Background(), sk.PublicKey())
	if !errors.Is(err, ErrDamaged) {
		t.Errorf("Get on a damaged page: %v, want ErrDamaged", err)
	}
	// A write that meets a damaged page (the PUTs above stopped at their
	// read) is rolled back the ordinary way: writes that need only intact
	// pages may still go on.
	s.touch(sk.PublicKey())
	if err := s.flush(); !errors.Is(err, ErrDamaged) {
		t.Errorf("flush over a damaged page: %v, want ErrDamaged", err)
	}
	if s.wedged.Load() {
		t.Error("a write that met a damaged page stopped all writes")
	}
	// The index page, which needs no page of the file, still answers.
	resp, _ = r.do(http.MethodGet, r.base+"/", nil, nil)
	wantStatus(t, resp, http.StatusOK)
	if err := s.Close(); err == nil {
		t.Log("Close after damage: no error (nothing left to flush)")
	}
}

// TestBoltStoreTruncatedWhileOpen: a file cut short under a running store
// leaves mapped pages with nothing behind them, and reading one faults.
// The fault is an error, not the end of the process.
func TestBoltStoreTruncatedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openBolt(t, path)
	var keys []pkarrclient.PublicKey
	for range 50 {
		sk := newSecretKey(t)
		mustPut(t, s, sign(t, sk, tsAt(0), 300, strings.Repeat("v", 600)), PutStored)
		keys = append(keys, sk.PublicKey())
	}
	if err := os.Truncate(path, 2*4096); err != nil {
		t.Fatal(err)
	}
	damaged := 0
	for _, key := range keys {
		_, err := s.Get(context.Background(), key)
		if errors.Is(err, ErrDamaged) {
			damaged++
		} else if err != nil {
			t.Errorf("Get: %v, want ErrDamaged", err)
		}
	}
	if damaged == 0 {
		t.Error("no Get noticed the missing pages")
	}
	t.Logf("%d of %d Gets failed with ErrDamaged", damaged, len(keys))
	s.Close()
}

// junkPages overwrites the pages of the file at path with junk, sparing the
// two metas and, unless freelistToo, the freelist page.
func junkPages(t *testing.T, path string, freelistToo bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	const pageSize = 4096
	spared := 0
	for pg := 2; (pg+1)*pageSize <= len(b); pg++ {
		if !freelistToo && binary.LittleEndian.Uint16(b[pg*pageSize+8:]) == boltPageFreelist &&
			binary.LittleEndian.Uint64(b[pg*pageSize:]) == uint64(pg) {
			spared++
			continue
		}
		if _, err := file.WriteAt(junk(uint64(pg), pageSize), int64(pg*pageSize)); err != nil {
			t.Fatal(err)
		}
	}
	if !freelistToo && spared == 0 {
		t.Fatal("no freelist page found to spare")
	}
}

// TestBoltStoreWedged: a commit that meets a damaged page makes bbolt
// panic inside its commit, and its rollback may panic again and keep the
// writer lock. The store then refuses writes at once, reads still answer,
// and Close returns. Here the current freelist page's header names page 0,
// which bbolt refuses to free when it commits: the rollback then succeeds,
// and Close closes the file normally.
func TestBoltStoreWedged(t *testing.T) {
	wedgeScenario(t, false)
}

// TestBoltStoreWedgedLockHeld is the same with the freelist page's type
// damaged too, so that the rollback panics as well and bbolt keeps its
// writer lock: Close gives up after a second instead of hanging. bbolt's
// own Close stays blocked on that lock for good, so the scenario runs in a
// child process, which exits before the goroutine leak check.
func TestBoltStoreWedgedLockHeld(t *testing.T) {
	const childEnv = "PKARRRELAY_WEDGED_CHILD"
	if os.Getenv(childEnv) == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBoltStoreWedgedLockHeld$", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("WEDGED-OK")) || bytes.Contains(out, []byte("goroutine ")) {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	wedgeScenario(t, true)
	fmt.Println("WEDGED-OK")
	os.Exit(0)
}

func wedgeScenario(t *testing.T, lockHeld bool) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openBolt(t, path)
	var keys []*pkarrclient.SecretKey
	for range 20 {
		sk := newSecretKey(t)
		mustPut(t, s, sign(t, sk, tsAt(0), 300, "x"), PutStored)
		keys = append(keys, sk)
	}
	// The current freelist page, and the damage to its header.
	freelist := -1
	if err := s.db.View(func(tx *bolt.Tx) error {
		for id := 2; int64(id) < tx.Size()/4096; id++ {
			if info, err := tx.Page(id); err == nil && info != nil && info.Type == "freelist" {
				freelist = id
			}
		}
		return nil
	}); err != nil || freelist < 0 {
		t.Fatalf("no freelist page found: %v", err)
	}
	hdr := make([]byte, 8, 10) // id 0
	if lockHeld {
		hdr = append(hdr, 0, 0) // and no page type
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(hdr, int64(freelist)*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ctx := context.Background()
	if _, err := s.Put(ctx, sign(t, newSecretKey(t), tsAt(0), 300, "x")); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Put whose commit meets the damage: %v, want ErrDamaged", err)
	}
	if !s.wedged.Load() {
		t.Fatal("a panic in bbolt's commit did not stop writes")
	}
	_, err = s.Put(ctx, sign(t, newSecretKey(t), tsAt(0), 300, "x"))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "writes stopped") {
		t.Fatalf("Put after writes stopped: %v", err)
	}
	s.touch(keys[0].PublicKey())
	if err := s.flush(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("flush after writes stopped: %v", err)
	}
	// Reads do not need the writer lock, nor the freelist.
	for _, sk := range keys {
		if _, err := s.Get(ctx, sk.PublicKey()); err != nil {
			t.Fatalf("Get of an intact packet: %v", err)
		}
	}
	// Close reports the recency updates it could not write, and whether
	// it could close the file.
	err = s.Close()
	if !errors.Is(err, ErrDamaged) || strings.Contains(err.Error(), "stays open") != lockHeld {
		t.Fatalf("Close (bbolt's writer lock held: %v): %v", lockHeld, err)
	}
}

// FuzzBoltFile opens whatever bytes as a store file. It must refuse them
// with ErrDamaged (or ErrSchemaVersion, for a sound bbolt file of another
// layout), or open them and survive reads, a write and Close: no panic,
// no fault, no endless walk. The seeds are a small sound store and damaged
// copies of it; the mutator does the rest.
func FuzzBoltFile(f *testing.F) {
	dir := f.TempDir()
	seedPath := filepath.Join(dir, "seed.db")
	s, err := OpenBoltStore(seedPath, BoltBatchDelay(time.Millisecond), BoltRecencyFlushInterval(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	var keys []pkarrclient.PublicKey
	for i := range 12 {
		sk := seededSecretKey(f, uint64(5000+i))
		if _, err := s.Put(context.Background(), sign(f, sk, tsAt(0), 300, strings.Repeat("v", 300))); err != nil {
			f.Fatal(err)
		}
		keys = append(keys, sk.PublicKey())
	}
	s.Close()
	seed, err := os.ReadFile(seedPath)
	if err != nil {
		f.Fatal(err)
	}
	// The sound file is 32 KiB of which little is used; the fuzzer works
	// on the used pages.
	for len(seed) > 2*4096 && bytes.Count(seed[len(seed)-4096:], []byte{0}) == 4096 {
		seed = seed[:len(seed)-4096]
	}
	f.Add(seed)
	for _, at := range []int{8, 4096 + 8, 2*4096 + 10, 2*4096 + 24, 3*4096 + 16, len(seed) - 4096 + 20} {
		if at < len(seed) {
			b := bytes.Clone(seed)
			b[at] ^= 0x41
			f.Add(b)
		}
	}
	later := sign(f, seededSecretKey(f, 6000), tsAt(0), 300, "later")
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(dir, fmt.Sprintf("f%d.db", n.Add(1)))
		defer os.Remove(path)
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenBoltStore(path, BoltBatchDelay(time.Millisecond), BoltRecencyFlushInterval(time.Hour),
			BoltLockTimeout(time.Second))
		if err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrSchemaVersion) {
				t.Fatalf("refused with %v, want ErrDamaged or ErrSchemaVersion", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of several lines: %q", err)
			}
			return
		}
		for _, key := range keys {
			s.Get(context.Background(), key)
		}
		s.Put(context.Background(), later)
		s.Close()
	})
}
