package pkarrclient

import (
	"crypto/ed25519"
	"testing"
)

// The codec benchmarks run side by side with the bare Ed25519 operation on a
// message of the same size, so the overhead of building, encoding, parsing
// and checking a packet reads directly off one run:
//
//	go test -run='^$' -bench='Codec' -count=10 ./pkarrclient/ | benchstat -col /impl -

const benchRelay = "relay=https://euw1-1.relay.iroh.network./"

func BenchmarkCodecSign(b *testing.B) {
	sk := testKey(b, 0x21)
	p, err := NewBuilder().Timestamp(1).TXT("_iroh", 30, benchRelay).Sign(sk)
	if err != nil {
		b.Fatal(err)
	}
	msg := signable(p.Timestamp(), p.DNS())

	b.Run("impl=ed25519", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ed25519.Sign(sk.priv, msg)
		}
	})
	b.Run("impl=pkarr", func(b *testing.B) {
		b.ReportAllocs()
		ts := Timestamp(1)
		for b.Loop() {
			ts++
			if _, err := NewBuilder().Timestamp(ts).TXT("_iroh", 30, benchRelay).Sign(sk); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCodecVerify(b *testing.B) {
	sk := testKey(b, 0x22)
	p, err := NewBuilder().Timestamp(1).TXT("_iroh", 30, benchRelay).Sign(sk)
	if err != nil {
		b.Fatal(err)
	}
	raw := p.Bytes()
	payload := p.RelayPayload()
	msg := signable(p.Timestamp(), p.DNS())
	sig := p.Signature()
	pub := sk.pub[:]

	b.Run("impl=ed25519", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
	b.Run("impl=pkarr-packet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseSignedPacket(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=pkarr-payload", func(b *testing.B) {
		b.ReportAllocs()
		key := sk.PublicKey()
		for b.Loop() {
			if _, err := ParseRelayPayload(key, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}
