package slotdiscovery_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/slotdiscovery"
)

// fingerprintShape is three groups of four z-base32 characters.
var fingerprintShape = regexp.MustCompile(`^[ybndrfg8ejkmcpqxot1uwisza345h769]{4}-[ybndrfg8ejkmcpqxot1uwisza345h769]{4}-[ybndrfg8ejkmcpqxot1uwisza345h769]{4}$`)

// cheapKDF keeps the tests that need many groups fast; the known answer
// uses the default profile, as real groups do.
var cheapKDF = slotdiscovery.WithKDF(slotdiscovery.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})

// TestFingerprintKnownAnswer pins the fingerprint of the default
// profile's vector passphrase: two builds that show different
// fingerprints for the same phrase would send people hunting for a typo
// that is not there.
func TestFingerprintKnownAnswer(t *testing.T) {
	g, err := slotdiscovery.DeriveGroup([]byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "kx6i-kdfj-6r4c"
	if got := g.Fingerprint(); got != want {
		t.Fatalf("Fingerprint() = %q, want %q", got, want)
	}
	// Stable across calls and across derivations of the same phrase.
	g2, err := slotdiscovery.DeriveGroup([]byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	if g2.Fingerprint() != g.Fingerprint() {
		t.Fatalf("two derivations of one phrase: %q and %q", g.Fingerprint(), g2.Fingerprint())
	}
}

// TestFingerprintTellsGroupsApart: a typo, another application or a
// namespace is another group, and shows another fingerprint; the shape
// is always three groups of four unambiguous characters, and none of the
// passphrase shows through.
func TestFingerprintTellsGroupsApart(t *testing.T) {
	phrases := []string{
		"correct horse battery staple",
		"correct horse battery stapel", // a typo
		"Correct horse battery staple", // a capital
		"correct horse battery staple ",
		"fingerprint fingerprint abcdef",
		"ybndrfg8ejkmcpqxot1uwisza345h769", // the alphabet itself
	}
	seen := map[string]string{}
	add := func(label string, g *slotdiscovery.Group) {
		t.Helper()
		fp := g.Fingerprint()
		if !fingerprintShape.MatchString(fp) {
			t.Errorf("%s: fingerprint %q is not three groups of four z-base32 characters", label, fp)
		}
		if prev, ok := seen[fp]; ok {
			t.Errorf("%s and %s share the fingerprint %q", prev, label, fp)
		}
		seen[fp] = label
	}
	for _, p := range phrases {
		g, err := slotdiscovery.DeriveGroup([]byte(p), cheapKDF)
		if err != nil {
			t.Fatal(err)
		}
		add("phrase "+p, g)
		fp := strings.ReplaceAll(g.Fingerprint(), "-", "")
		for _, w := range strings.Fields(p) {
			for i := 0; i+4 <= len(w); i++ {
				if strings.Contains(fp, strings.ToLower(w[i:i+4])) {
					t.Errorf("fingerprint %q shows %q of the passphrase", g.Fingerprint(), w[i:i+4])
				}
			}
		}
		add("namespace chat of "+p, g.Namespace("chat"))
		add("empty namespace of "+p, g.Namespace(""))
		other, err := slotdiscovery.DeriveGroup([]byte(p), cheapKDF, slotdiscovery.WithApp("otherapp"))
		if err != nil {
			t.Fatal(err)
		}
		add("app otherapp, "+p, other)
	}
}
