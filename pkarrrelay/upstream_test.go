package pkarrrelay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// fakeUpstream records publishes and answers resolves from a map.
type fakeUpstream struct {
	mu         sync.Mutex
	packets    map[pkarrclient.PublicKey]*pkarrclient.SignedPacket
	published  []*pkarrclient.SignedPacket
	resolves   int
	publishErr error
	resolveErr error
}

func (u *fakeUpstream) Publish(_ context.Context, p *pkarrclient.SignedPacket) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.published = append(u.published, p)
	return u.publishErr
}

func (u *fakeUpstream) Resolve(_ context.Context, key pkarrclient.PublicKey) (*pkarrclient.SignedPacket, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.resolves++
	if u.resolveErr != nil {
		return nil, u.resolveErr
	}
	p, ok := u.packets[key]
	if !ok {
		return nil, pkarrclient.ErrNotFound
	}
	return p, nil
}

func TestUpstreamResolvesMissesAndCaches(t *testing.T) {
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 900, "from upstream")
	up := &fakeUpstream{packets: map[pkarrclient.PublicKey]*pkarrclient.SignedPacket{sk.PublicKey(): p}}
	store := NewMemoryStore(10)
	r := newRelay(t, store, WithUpstream(up))

	for range 2 {
		resp, body := r.get(sk.PublicKey(), nil)
		wantStatus(t, resp, http.StatusOK)
		wantHeader(t, resp, "Cache-Control", "public, max-age=900")
		if !bytes.Equal(body, p.RelayPayload()) {
			t.Fatal("wrong body")
		}
	}
	if up.resolves != 1 {
		t.Errorf("upstream asked %d times; the answer should have been cached", up.resolves)
	}
	if store.Len() != 1 {
		t.Errorf("store holds %d packets", store.Len())
	}

	resp, _ := r.get(newSecretKey(t).PublicKey(), nil)
	wantStatus(t, resp, http.StatusNotFound)
	// A malformed key never reaches the upstream.
	before := up.resolves
	resp, _ = r.do(http.MethodGet, r.base+"/"+invalidPointKey(t), nil, nil)
	wantStatus(t, resp, http.StatusBadRequest)
	if up.resolves != before {
		t.Error("upstream asked about an invalid key")
	}
}

func TestUpstreamResolveFailures(t *testing.T) {
	sk, other := newSecretKey(t), newSecretKey(t)
	cases := []struct {
		name    string
		packet  *pkarrclient.SignedPacket
		err     error
		want    int
		wantErr bool
	}{
		{"error", nil, errors.New("DHT unreachable"), http.StatusBadGateway, true},
		{"wrapped not found", nil, fmt.Errorf("dht: %w", ErrNotFound), http.StatusNotFound, false},
		{"packet for another key", sign(t, other, tsAt(0), 300, "x"), nil, http.StatusBadGateway, true},
		{"packet from the far future", sign(t, sk, tsAt(time.Hour), 300, "x"), nil, http.StatusNotFound, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := &fakeUpstream{resolveErr: tc.err, packets: map[pkarrclient.PublicKey]*pkarrclient.SignedPacket{}}
			if tc.packet != nil {
				up.packets[sk.PublicKey()] = tc.packet
			}
			logs := &logCapture{}
			store := NewMemoryStore(10)
			r := newRelay(t, store, WithUpstream(up), WithLogger(slog.New(logs)))
			resp, _ := r.get(sk.PublicKey(), nil)
			wantStatus(t, resp, tc.want)
			if store.Len() != 0 {
				t.Error("a rejected upstream answer was cached")
			}
			if got := logs.count(slog.LevelWarn) > 0; got != tc.wantErr {
				t.Errorf("warning logged = %v, want %v", got, tc.wantErr)
			}
		})
	}
}

func TestUpstreamPublish(t *testing.T) {
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")

	up := &fakeUpstream{}
	r := newRelay(t, NewMemoryStore(10), WithUpstream(up))
	wantStatus(t, r.putPacket(p), http.StatusNoContent)
	wantStatus(t, r.putPacket(p), http.StatusNoContent)                                      // republish
	wantStatus(t, r.putPacket(sign(t, sk, tsAt(-time.Hour), 300, "x")), http.StatusConflict) // not forwarded
	if len(up.published) != 2 || !up.published[0].Equal(p) || !up.published[1].Equal(p) {
		t.Errorf("upstream got %d publishes, want the packet and its republish", len(up.published))
	}

	// The upstream knows something newer: 409, as pkarr's relay answers.
	up = &fakeUpstream{publishErr: fmt.Errorf("dht: %w", pkarrclient.ErrNotMostRecent)}
	r = newRelay(t, NewMemoryStore(10), WithUpstream(up))
	wantStatus(t, r.putPacket(p), http.StatusConflict)

	// The upstream failed: 502, but the relay itself serves the packet.
	up = &fakeUpstream{publishErr: errors.New("no DHT nodes")}
	r = newRelay(t, NewMemoryStore(10), WithUpstream(up))
	resp, body := r.do(http.MethodPut, r.keyURL(sk.PublicKey()), bytes.NewReader(p.RelayPayload()), nil)
	wantStatus(t, resp, http.StatusBadGateway)
	if bytes.Contains(body, []byte("no DHT nodes")) {
		t.Error("upstream error text leaked to the client")
	}
	resp, _ = r.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusOK)
}
