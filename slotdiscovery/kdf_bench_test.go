package slotdiscovery

import "testing"

// BenchmarkDeriveGroup measures the slow step a newcomer pays once per
// passphrase, and an attacker once per guess, with the default parameters.
func BenchmarkDeriveGroup(b *testing.B) {
	pass := []byte("correct horse battery staple")
	for b.Loop() {
		if _, err := DeriveGroup(pass); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNamespace measures deriving a sub-group: no KDF, only BLAKE3.
func BenchmarkNamespace(b *testing.B) {
	g, err := DeriveGroup([]byte("correct horse battery staple"), WithKDF(KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		g.Namespace("floodsub:chat")
	}
}
