package pkarrrelay

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestConcurrentHTTPPutsKeepNewest sends 1000 PUTs for one key, each with a
// distinct timestamp, from 1000 goroutines in random order over real HTTP.
// Every answer must be 204 or 409 and the newest packet must win, for every
// store.
func TestConcurrentHTTPPutsKeepNewest(t *testing.T) {
	sk := newSecretKey(t)
	packets := signVersions(t, sk, 1000)
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			r := newRelay(t, kind.open(t, 100))
			// Enough connections to keep many handlers busy at once,
			// without opening one socket per goroutine.
			client := &http.Client{
				Transport: &http.Transport{MaxConnsPerHost: 64, MaxIdleConnsPerHost: 64},
				Timeout:   30 * time.Second,
			}
			defer client.CloseIdleConnections()

			start := make(chan struct{})
			codes := make([]int, len(packets))
			var wg sync.WaitGroup
			for _, i := range rand.Perm(len(packets)) {
				wg.Go(func() {
					<-start
					req, err := http.NewRequest(http.MethodPut, r.keyURL(sk.PublicKey()),
						bytes.NewReader(packets[i].RelayPayload()))
					if err != nil {
						t.Error(err)
						return
					}
					resp, err := client.Do(req)
					if err != nil {
						t.Errorf("PUT %d: %v", i, err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes[i] = resp.StatusCode
				})
			}
			close(start)
			wg.Wait()

			counts := map[int]int{}
			for i, code := range codes {
				counts[code]++
				if code != http.StatusNoContent && code != http.StatusConflict {
					t.Errorf("PUT %d answered %d", i, code)
				}
			}
			if codes[len(codes)-1] != http.StatusNoContent {
				t.Errorf("the newest PUT answered %d", codes[len(codes)-1])
			}
			resp, body := r.get(sk.PublicKey(), nil)
			wantStatus(t, resp, http.StatusOK)
			if !bytes.Equal(body, packets[len(packets)-1].RelayPayload()) {
				t.Fatal("the relay does not serve the newest packet")
			}
			t.Logf("answers: %v", counts)
		})
	}
}
