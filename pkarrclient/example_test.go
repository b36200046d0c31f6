package pkarrclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// startExampleRelay runs a pkarr relay in process on 127.0.0.1, standing in
// for the public relays of DefaultRelays.
func startExampleRelay() (url string, stop func()) {
	store := pkarrrelay.NewMemoryStore(1000)
	h, err := pkarrrelay.NewHandler(store, pkarrrelay.WithBasePath("/pkarr"))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	return srv.URL + "/pkarr", func() { srv.Close(); store.Close() }
}

// Publish a record to a relay and resolve it back. In a real program the
// relay URLs come from DefaultRelays.
func ExampleNewClient() {
	url, stop := startExampleRelay()
	defer stop()

	relay, err := pkarrclient.NewRelay(url)
	if err != nil {
		log.Fatal(err)
	}
	client, err := pkarrclient.NewClient([]pkarrclient.Backend{relay})
	if err != nil {
		log.Fatal(err)
	}

	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	packet, err := pkarrclient.NewBuilder().TXT("_hello", 300, "world").Sign(sk)
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := client.Publish(ctx, packet)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("accepted by %d of %d relays\n", res.Accepted, len(res.Outcomes))

	// NetworkOnly skips the Client's cache, which already holds the packet
	// it just published, and reads it back from the relay.
	got, err := client.Resolve(ctx, sk.PublicKey(), pkarrclient.NetworkOnly())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.TXT("_hello"))
	// Output:
	// accepted by 1 of 1 relays
	// [world]
}

// Resolving a key nobody published: the error tells why, backend by backend.
func ExampleClient_Resolve_notFound() {
	url, stop := startExampleRelay()
	defer stop()

	relay, err := pkarrclient.NewRelay(url)
	if err != nil {
		log.Fatal(err)
	}
	client, err := pkarrclient.NewClient([]pkarrclient.Backend{relay})
	if err != nil {
		log.Fatal(err)
	}
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		log.Fatal(err)
	}

	_, err = client.Resolve(context.Background(), sk.PublicKey())
	var re *pkarrclient.ResolveError
	if errors.As(err, &re) {
		fmt.Println("not found:", errors.Is(err, pkarrclient.ErrNotFound))
		for _, o := range re.Outcomes {
			var be *pkarrclient.BackendError
			if errors.As(o.Err, &be) {
				fmt.Println("relay answered HTTP", be.Status)
			}
		}
	}
	// Output:
	// not found: true
	// relay answered HTTP 404
}

// Publishing to several relays and reporting each one's outcome, as a
// command-line tool would.
func ExampleClient_Publish() {
	var backends []pkarrclient.Backend
	for range 3 {
		url, stop := startExampleRelay()
		defer stop()
		relay, err := pkarrclient.NewRelay(url)
		if err != nil {
			log.Fatal(err)
		}
		backends = append(backends, relay)
	}
	client, err := pkarrclient.NewClient(backends, pkarrclient.WithSuccessPolicy(pkarrclient.Majority))
	if err != nil {
		log.Fatal(err)
	}
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	packet, err := pkarrclient.NewBuilder().TXT("_hello", 300, "world").Sign(sk)
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Publish(context.Background(), packet)
	for i, o := range res.Outcomes {
		fmt.Printf("relay %d: ok=%v\n", i, o.Err == nil)
	}
	fmt.Println("error:", err)
	// Output:
	// relay 0: ok=true
	// relay 1: ok=true
	// relay 2: ok=true
	// error: <nil>
}
