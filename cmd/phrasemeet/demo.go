package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// runDemo shows the pkarr substrate end to end on loopback: a relay, a
// signed record published to it and resolved back by a second client, and
// the relay turning away an older, a forged and a far-future packet.
func runDemo(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("demo", "[--listen ADDR]", e.stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address for the demo's relay")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q", rest[0])
	}
	start := time.Now()
	say := func(format string, a ...any) {
		fmt.Fprintf(e.stdout, "[%8.1fms] %s\n", float64(time.Since(start).Microseconds())/1000, fmt.Sprintf(format, a...))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	store := pkarrrelay.NewMemoryStore(1000)
	h, err := pkarrrelay.NewHandler(store, pkarrrelay.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	srv, err := pkarrrelay.NewServer(h)
	if err != nil {
		return err
	}
	ln, err := srv.Listen(ctx, *listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	say("relay serving %s (in-process, memory store)", srv.URL())

	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		return err
	}
	defer sk.Destroy()
	key := sk.PublicKey()
	say("generated key %s", key)

	p, err := pkarrclient.NewBuilder().
		TXT("_hello", 300, "greeting=hello from phrasemeet").
		Address("@", 300, netip.MustParseAddr("192.0.2.1")).
		Sign(sk)
	if err != nil {
		return err
	}
	say("signed a packet: %d bytes, timestamp %s", p.Size(), p.Timestamp())

	publisher, err := newClient([]string{srv.URL()})
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := publisher.Publish(ctx, p); err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	say("published to the relay in %s", time.Since(t0).Round(time.Microsecond))

	// A second client has no cache: the answer must come from the relay.
	resolver, err := newClient([]string{srv.URL()})
	if err != nil {
		return err
	}
	t0 = time.Now()
	got, err := resolver.Resolve(ctx, key, pkarrclient.NetworkOnly())
	if err != nil {
		return fmt.Errorf("resolving: %w", err)
	}
	if !got.Equal(p) {
		return errors.New("resolved packet differs from the published one")
	}
	say("resolved and verified by a second client in %s:", time.Since(t0).Round(time.Microsecond))
	var zone bytes.Buffer
	printPacket(&zone, got)
	for _, line := range bytes.Split(bytes.TrimSpace(zone.Bytes()), []byte("\n")) {
		fmt.Fprintf(e.stdout, "             %s\n", line)
	}

	// What the relay refuses.
	older, err := pkarrclient.NewBuilder().Timestamp(p.Timestamp()-1).TXT("_hello", 300, "stale").Sign(sk)
	if err != nil {
		return err
	}
	_, err = publisher.Publish(ctx, older)
	if !errors.Is(err, pkarrclient.ErrNotMostRecent) {
		return fmt.Errorf("publishing an older packet: want a conflict, got %v", err)
	}
	say("an older packet is refused: 409 Conflict")

	forged := p.RelayPayload()
	forged[len(forged)-1] ^= 1 // one bit of the DNS message, after signing
	status, err := put(ctx, srv.URL()+"/"+key.String(), forged)
	if err != nil || status != http.StatusBadRequest {
		return fmt.Errorf("publishing a forged packet: want 400, got %d %v", status, err)
	}
	say("a packet altered after signing is refused: %d Bad Request", status)

	future, err := pkarrclient.NewBuilder().
		Timestamp(pkarrclient.TimestampFromTime(time.Now().Add(365*24*time.Hour))).
		TXT("_hello", 300, "from the future").Sign(sk)
	if err != nil {
		return err
	}
	status, err = put(ctx, srv.URL()+"/"+key.String(), future.RelayPayload())
	if err != nil || status != http.StatusBadRequest {
		return fmt.Errorf("publishing a far-future packet: want 400, got %d %v", status, err)
	}
	say("a packet stamped a year ahead (which would lock the key) is refused: %d Bad Request", status)

	cancel()
	if err := <-served; err != nil {
		return err
	}
	say("relay stopped; demo done in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// put sends a raw relay payload, bypassing the client's own checks, as a
// hostile publisher would.
func put(ctx context.Context, url string, payload []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
