package pkarrclient_test

import (
	"fmt"
	"log"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// Sign a packet and parse it back. Ed25519 signatures are deterministic, so
// a given seed, timestamp and record set always give the same bytes: these
// are the ones of shared/vectors/pkarr-packet-a.txt.
func ExampleBuilder() {
	sk, err := pkarrclient.SecretKeyFromSeed(make([]byte, pkarrclient.SeedSize))
	if err != nil {
		log.Fatal(err)
	}
	p, err := pkarrclient.NewBuilder().
		Timestamp(1_700_000_000_000_000).
		TXT("_iroh", 30, "relay=https://euw1-1.relay.iroh.network./").
		Sign(sk)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.PublicKey())
	fmt.Printf("%d bytes, signature %x...\n", p.Size(), p.Signature()[:8])

	// Whoever receives the bytes verifies them before reading anything.
	q, err := pkarrclient.ParseSignedPacket(p.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q.Timestamp(), q.TXT("_iroh"))
	// Output:
	// 8pinxxgqs41n4aididenw5apqp1urfmzdztr8jt4abrkdn435ewo
	// 228 bytes, signature c018e2661612be7b...
	// 2023-11-14T22:13:20.000000Z [relay=https://euw1-1.relay.iroh.network./]
}

// Keys are accepted in every form pkarr users write them.
func ExampleParsePublicKey() {
	for _, s := range []string{
		"yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no",
		"pk:yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no",
		"https://_foo.yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no./path",
		"yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5nt", // padding bit set
	} {
		key, err := pkarrclient.ParsePublicKey(s)
		fmt.Println(key, err != nil)
	}
	// Output:
	// yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no false
	// yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no false
	// yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no false
	// yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy true
}
