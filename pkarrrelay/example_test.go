package pkarrrelay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// A relay mounted under /pkarr on a test server: publish a packet with PUT,
// read it back with GET.
func ExampleNewHandler() {
	store := pkarrrelay.NewMemoryStore(1000)
	defer store.Close()
	h, err := pkarrrelay.NewHandler(store, pkarrrelay.WithBasePath("/pkarr"))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	p, err := pkarrclient.NewBuilder().TXT("_hello", 3600, "world").Sign(sk)
	if err != nil {
		log.Fatal(err)
	}
	url := srv.URL + "/pkarr/" + sk.PublicKey().String()

	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(p.RelayPayload()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("PUT:", resp.Status)

	resp, err = http.Get(url)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got, err := pkarrclient.ParseRelayPayload(sk.PublicKey(), body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("GET:", resp.Status, resp.Header.Get("Cache-Control"), got.TXT("_hello"))
	// Output:
	// PUT: 204 No Content
	// GET: 200 OK public, max-age=3600 [world]
}

// A complete relay as a command would run it: a persistent store, the
// handler, and a server that stops when the context ends.
func ExampleServer() {
	dir, err := os.MkdirTemp("", "pkarrrelay-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := pkarrrelay.OpenBoltStore(filepath.Join(dir, "relay.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	h, err := pkarrrelay.NewHandler(store, pkarrrelay.WithVersion("1.0.0"))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := pkarrrelay.NewServer(h)
	if err != nil {
		log.Fatal(err)
	}
	// A command would use signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := srv.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	resp, err := http.Get(srv.URL() + "/")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("index:", resp.Status)

	http.DefaultClient.CloseIdleConnections()
	cancel()
	fmt.Println("serve returned:", <-done)
	// Output:
	// index: 200 OK
	// serve returned: <nil>
}
