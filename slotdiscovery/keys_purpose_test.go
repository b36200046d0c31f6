package slotdiscovery

import "testing"

func TestDeriveKeyPurposes(t *testing.T) {
	g, err := DeriveGroup([]byte("correct horse battery staple"), WithKDF(KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}))
	if err != nil {
		t.Fatal(err)
	}
	a, b := g.DeriveKey("mdnsdiscovery"), g.DeriveKey("chat")
	if a == b {
		t.Fatal("two purposes derived the same key")
	}
	if a != g.DeriveKey("mdnsdiscovery") {
		t.Fatal("DeriveKey is not deterministic")
	}
	if a == g.Namespace("x").DeriveKey("mdnsdiscovery") {
		t.Fatal("a namespace shares its parent's purpose key")
	}
	if a == g.key {
		t.Fatal("purpose key equals the group key")
	}
}
