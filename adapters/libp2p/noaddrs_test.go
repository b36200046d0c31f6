package libp2padapter_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// A host on loopback only, without WithLoopback, has nothing to publish:
// Advertise says so with ErrNoAddrs instead of publishing an empty record
// that nobody can dial, and opens no discoverer for it.
func TestAdvertiseLoopbackOnlyFails(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	h := newHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"))
	opened := 0
	open := func(ns string) (discovery.Discoverer, error) {
		opened++
		return libp2padapter.MemoryOpener(mem)(ns)
	}
	a, err := libp2padapter.New(h, open)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = a.Advertise(ctx, "ns")
	if opened != 0 {
		t.Errorf("a refused Advertise opened %d discoverers", opened)
	}
	if !errors.Is(err, libp2padapter.ErrNoAddrs) {
		t.Fatalf("Advertise on a loopback-only host = %v, want ErrNoAddrs", err)
	}
	if !strings.Contains(err.Error(), "WithLoopback") {
		t.Errorf("the error does not point to the fix: %v", err)
	}
	// With WithLoopback the same host advertises.
	b := newAdapter(t, h, libp2padapter.MemoryOpener(mem))
	if _, err := b.Advertise(ctx, "ns"); err != nil {
		t.Fatalf("with WithLoopback: %v", err)
	}
}

// A host with no address at all yet (a private host waiting for its relay
// reservation, say) still advertises: the record is updated when its
// addresses appear. The adapter warns once, through its logger.
func TestAdvertiseNoAddrsYetWarnsOnce(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	h := newHost(t, libp2p.NoListenAddrs)
	var logs safeBuffer
	a, err := libp2padapter.New(h, libp2padapter.MemoryOpener(mem),
		libp2padapter.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, ns := range []string{"one", "two", "one"} {
		if _, err := a.Advertise(ctx, ns); err != nil {
			t.Fatalf("Advertise(%s) on a host without addresses yet: %v", ns, err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), libp2padapter.ErrNoAddrs.Error()) {
		t.Errorf("the warning does not carry ErrNoAddrs:\n%s", logs.String())
	}
}
