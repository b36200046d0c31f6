package pkarrrelay

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"golang.org/x/time/rate"
)

// The memory store's footprint per packet, measured rather than estimated:
// the test bounds the live heap a stored packet costs, the benchmark PUTs
// b.N packets through the Handler as a relay process would and reports the
// live heap and the resident set per packet:
//
//	go test -run='^$' -bench=MemoryStoreFootprint -benchtime=200000x ./pkarrrelay/

// footprintPacket signs a packet for the key made from seed whose relay
// payload is payloadSize bytes (at least 200, at most MaxPayloadSize): one
// TXT record, sized to fit.
func footprintPacket(tb testing.TB, seed uint64, ts pkarrclient.Timestamp, payloadSize int) *pkarrclient.SignedPacket {
	tb.Helper()
	sk := seededSecretKey(tb, seed)
	// DNS message: 12 header + 60 owner name + 10 fixed fields + the
	// value with one length byte per 255-byte character-string.
	dnsSize := payloadSize - pkarrclient.PayloadHeaderSize
	n := dnsSize - 82
	for n+(n+254)/255 > dnsSize-82 {
		n--
	}
	p, err := pkarrclient.NewBuilder().Timestamp(ts).TXT("_test", 300, strings.Repeat("x", n)).Sign(sk)
	if err != nil {
		tb.Fatal(err)
	}
	if got := len(p.RelayPayload()); got != payloadSize {
		tb.Fatalf("footprint packet: payload of %d bytes, want %d", got, payloadSize)
	}
	return p
}

// seededSecretKey returns the same key for the same seed, so tests that
// build files from keys build the same file every run.
func seededSecretKey(tb testing.TB, seed uint64) *pkarrclient.SecretKey {
	tb.Helper()
	var s [32]byte
	binary.BigEndian.PutUint64(s[:], seed+1)
	sk, err := pkarrclient.SecretKeyFromSeed(s[:])
	if err != nil {
		tb.Fatal(err)
	}
	return sk
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// vmRSS returns the process's resident set in bytes, or 0 where
// /proc/self/status is not available.
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// TestMemoryStoreFootprint bounds the live heap one stored packet costs in
// the memory store: the payload in its allocation size class (1152 bytes
// for a full 1072-byte payload) plus the index, which must stay small next
// to it.
func TestMemoryStoreFootprint(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	const n = 4096
	cases := []struct {
		payload int
		max     float64 // bytes of live heap per packet
	}{
		// The payload in its size class (1152 or 416 bytes), the LRU
		// element in the 128-byte class, and the map slot: 40 bytes (key
		// and pointer) at a load between 7/16 and 7/8, about 96 bytes at
		// this n with Go 1.26's maps. The bounds leave 14 bytes of slack:
		// one allocation class more for the element (160 bytes, as when it
		// held a whole Record) fails them.
		{pkarrclient.MaxPayloadSize, 1152 + 128 + 110},
		{405, 416 + 128 + 110}, // the benchmarks' typical packet
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.payload)+"B", func(t *testing.T) {
			packets := make([]*pkarrclient.SignedPacket, n)
			for i := range packets {
				packets[i] = footprintPacket(t, uint64(i), tsAt(0), tc.payload)
			}
			before := liveHeap()
			s := NewMemoryStore(n)
			for _, p := range packets {
				if _, err := s.Put(t.Context(), p); err != nil {
					t.Fatal(err)
				}
			}
			after := liveHeap()
			runtime.KeepAlive(packets)
			if s.Len() != n {
				t.Fatalf("store holds %d packets, want %d", s.Len(), n)
			}
			per := float64(after-before) / n
			t.Logf("%d-byte payloads: %.0f bytes of live heap per stored packet", tc.payload, per)
			if per > tc.max {
				t.Errorf("%d-byte payloads cost %.0f bytes of live heap each, want at most %.0f", tc.payload, per, tc.max)
			}
			s.Close()
		})
	}
}

// BenchmarkMemoryStoreFootprint PUTs b.N distinct full-size packets
// through a Handler on a memory store, the path a relay process takes
// (body buffer, verification, copy into the store), and reports per packet
// the live heap after a GC (heap-B/packet) and the growth of the resident
// set (rss-B/packet), which also holds the garbage the Go runtime lets
// accumulate between collections (GOGC) and so depends on it.
func BenchmarkMemoryStoreFootprint(b *testing.B) {
	for _, size := range []int{pkarrclient.MaxPayloadSize, 405} {
		b.Run("payload="+strconv.Itoa(size), func(b *testing.B) {
			s := NewMemoryStore(max(b.N, 1))
			h, err := NewHandler(s, WithWriteRateLimit(rate.Inf, 0), WithReadRateLimit(rate.Inf, 0))
			if err != nil {
				b.Fatal(err)
			}
			ts := pkarrclient.TimestampFromTime(time.Now().Add(-time.Minute))
			heap0, rss0 := liveHeap(), vmRSS()
			b.ResetTimer()
			for i := range b.N {
				p := footprintPacket(b, uint64(i), ts, size)
				req := httptest.NewRequest(http.MethodPut, "/"+p.PublicKey().String(), bytes.NewReader(p.RelayPayload()))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusNoContent {
					b.Fatalf("PUT %d: %d %s", i, w.Code, w.Body.Bytes())
				}
			}
			b.StopTimer()
			rss1 := vmRSS()
			heap1 := liveHeap()
			if s.Len() != b.N {
				b.Fatalf("store holds %d packets, want %d", s.Len(), b.N)
			}
			b.ReportMetric(float64(heap1-heap0)/float64(b.N), "heap-B/packet")
			if rss0 > 0 && rss1 > rss0 {
				b.ReportMetric(float64(rss1-rss0)/float64(b.N), "rss-B/packet")
			}
			s.Close()
		})
	}
}
