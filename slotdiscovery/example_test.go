package slotdiscovery_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// Two programs that share nothing but a passphrase meet through a pkarr
// relay. Here the relay runs in the process, on 127.0.0.1; a real program
// passes pkarrclient.DefaultRelays() instead, and everything else stays as
// it is but the KDF (see below).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	store := pkarrrelay.NewMemoryStore(1000)
	defer store.Close()
	relay, err := pkarrrelay.NewHandler(store)
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(relay)
	defer srv.Close()

	// join is what each program does on its own: derive the group from the
	// passphrase, then start a discoverer over its relays.
	join := func() *slotdiscovery.Discoverer {
		group, err := slotdiscovery.DeriveGroup([]byte("correct horse battery staple"),
			slotdiscovery.WithApp("example.com/hello"),
			// A KDF this cheap keeps the example fast and gives a guesser
			// the same speed; programs keep the default (64 MiB Argon2id).
			// The parameters are part of the group: all members use the same.
			slotdiscovery.WithKDF(slotdiscovery.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}))
		if err != nil {
			log.Fatal(err)
		}
		client, err := pkarrclient.NewRelayClient([]string{srv.URL})
		if err != nil {
			log.Fatal(err)
		}
		d, err := slotdiscovery.New(client, group)
		if err != nil {
			log.Fatal(err)
		}
		return d
	}
	alice, bob := join(), join()
	defer alice.Close(context.Background())
	defer bob.Close(context.Background())

	// Alice announces herself; the record is kept alive until ctx ends or
	// she leaves.
	ann, err := alice.Announce(ctx, discovery.Record{ID: "alice", Addrs: []string{"/ip4/192.0.2.1/udp/4001/quic-v1"}})
	if err != nil {
		log.Fatal(err)
	}
	defer ann.Leave(context.Background())

	// Bob listens. Right after starting a discoverer scans every second,
	// so this takes a second or two.
	events, err := bob.Subscribe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		if ev.Type == discovery.Found {
			fmt.Println("bob found", ev.Peer.ID, "at", ev.Peer.Addrs[0])
			break
		}
	}
	// Output: bob found alice at /ip4/192.0.2.1/udp/4001/quic-v1
}

// Two people check on the phone that they typed the same passphrase: a
// typo gives another group, silently empty, and another fingerprint. The
// fingerprint is derived from the group's key (it costs the full KDF),
// never from the passphrase itself.
func ExampleGroup_Fingerprint() {
	fingerprint := func(passphrase string) string {
		g, err := slotdiscovery.DeriveGroup([]byte(passphrase), slotdiscovery.WithApp("example.com/hello"))
		if err != nil {
			log.Fatal(err)
		}
		return g.Fingerprint()
	}
	fmt.Println("ada:  ", fingerprint("correct horse battery staple"))
	fmt.Println("grace:", fingerprint("correct horse battery staple"))
	fmt.Println("typo: ", fingerprint("correct horse batery staple"))
	// Output:
	// ada:   bg8q-eefp-595i
	// grace: bg8q-eefp-595i
	// typo:  17e9-swc3-fywu
}
