package pkarrrelay

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"golang.org/x/time/rate"
)

// The benchmarks run real HTTP over loopback, client and server in one
// process, so absolute numbers depend on the machine; what matters is each
// relay variant against its bare baseline in the same run:
//
//	GET: relay (memory, bolt) vs a bare handler writing the same bytes
//	PUT: relay (memory, bolt) vs a bare handler that only verifies
//
// Run with (benchstat puts each variant beside its baseline):
//
//	go test -run='^$' -bench=. -benchtime=3s -count=6 ./pkarrrelay/ | benchstat -col /impl -

const benchKeys = 1000

// benchParallelism multiplies GOMAXPROCS to get the number of client
// goroutines: enough concurrent requests to keep the server busy while
// clients wait on the network, and for bolt Puts to share batches.
const benchParallelism = 8

type benchFixture struct {
	packets []*pkarrclient.SignedPacket
	paths   []string // "/<z32>"
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	f := &benchFixture{}
	ts := pkarrclient.TimestampFromTime(time.Now().Add(-time.Minute))
	for range benchKeys {
		sk := newSecretKey(b)
		p, err := pkarrclient.NewBuilder().Timestamp(ts).
			TXT("_peer", 300, strings.Repeat("x", 200)).
			TXT("_addr", 300, "/ip4/192.0.2.1/udp/4001/quic-v1").Sign(sk)
		if err != nil {
			b.Fatal(err)
		}
		f.packets = append(f.packets, p)
		f.paths = append(f.paths, "/"+sk.PublicKey().String())
	}
	return f
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     time.Minute,
	}}
}

// runRequests drives srv with requests built by mk, in parallel, counting
// any status outside ok as an error.
func runRequests(b *testing.B, srv *httptest.Server, mk func(i int) (*http.Request, error), ok ...int) {
	client := benchClient()
	defer client.CloseIdleConnections()
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := mk(int(next.Add(1)))
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			good := false
			for _, code := range ok {
				good = good || resp.StatusCode == code
			}
			if !good {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func benchRelayHandler(b *testing.B, store Store) http.Handler {
	b.Helper()
	h, err := NewHandler(store, WithWriteRateLimit(rate.Inf, 0), WithReadRateLimit(rate.Inf, 0))
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func benchStores(b *testing.B) map[string]func() Store {
	return map[string]func() Store{
		"memory": func() Store { return NewMemoryStore(DefaultCapacity) },
		"bolt": func() Store {
			s, err := OpenBoltStore(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
}

func BenchmarkGET(b *testing.B) {
	f := newBenchFixture(b)
	get := func(srv *httptest.Server) func(i int) (*http.Request, error) {
		return func(i int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, srv.URL+f.paths[i%benchKeys], nil)
		}
	}

	b.Run("impl=bare", func(b *testing.B) {
		// The floor: a map lookup and the same bytes and content type.
		bodies := make(map[string][]byte, benchKeys)
		for i, p := range f.packets {
			bodies[f.paths[i]] = p.RelayPayload()
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := bodies[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", PayloadContentType)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}))
		defer srv.Close()
		runRequests(b, srv, get(srv), http.StatusOK)
	})
	for _, name := range []string{"memory", "bolt"} {
		b.Run("impl=relay-"+name, func(b *testing.B) {
			store := benchStores(b)[name]()
			defer store.Close()
			for _, p := range f.packets {
				if _, err := store.Put(b.Context(), p); err != nil {
					b.Fatal(err)
				}
			}
			srv := httptest.NewServer(benchRelayHandler(b, store))
			defer srv.Close()
			runRequests(b, srv, get(srv), http.StatusOK)
		})
	}
}

func BenchmarkPUT(b *testing.B) {
	f := newBenchFixture(b)
	payloads := make([][]byte, benchKeys)
	for i, p := range f.packets {
		payloads[i] = p.RelayPayload()
	}
	put := func(srv *httptest.Server) func(i int) (*http.Request, error) {
		return func(i int) (*http.Request, error) {
			k := i % benchKeys
			return http.NewRequest(http.MethodPut, srv.URL+f.paths[k], bytes.NewReader(payloads[k]))
		}
	}

	b.Run("impl=verify-only", func(b *testing.B) {
		// The floor: read the body and verify it under the key in the path,
		// which is what bounds any relay's PUT rate.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, err := pkarrclient.ParsePublicKey(strings.TrimPrefix(r.URL.Path, "/"))
			if err != nil {
				http.Error(w, "bad key", http.StatusBadRequest)
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, pkarrclient.MaxPayloadSize+1))
			if err != nil {
				http.Error(w, "read", http.StatusBadRequest)
				return
			}
			if _, err := pkarrclient.ParseRelayPayload(key, body); err != nil {
				http.Error(w, "bad packet", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		runRequests(b, srv, put(srv), http.StatusNoContent)
	})
	for _, name := range []string{"memory", "bolt"} {
		b.Run("impl=relay-"+name, func(b *testing.B) {
			store := benchStores(b)[name]()
			defer store.Close()
			srv := httptest.NewServer(benchRelayHandler(b, store))
			defer srv.Close()
			// The first PUT of each key stores it; later ones are
			// identical republishes, which still verify and (for bolt)
			// commit the new Stored time.
			runRequests(b, srv, put(srv), http.StatusNoContent)
		})
	}
}
