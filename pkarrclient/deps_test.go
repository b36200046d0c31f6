package pkarrclient_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dhtModulePrefix is the import path prefix of the Mainline DHT library
// and everything it brings (anacrolix/torrent, missinggo, stm, ...).
const dhtModulePrefix = "github.com/anacrolix/"

// relayOnlyPackages are what a program that talks to pkarr relays and
// never to the DHT builds on: the client and its relay backend, the
// relay server, slot discovery (which takes any pkarrclient.Backend),
// and testdata/relayresolve, a main that resolves a key through relays.
var relayOnlyPackages = []string{
	"github.com/phrasemeet/discovery/pkarrclient",
	"github.com/phrasemeet/discovery/pkarrrelay",
	"github.com/phrasemeet/discovery/slotdiscovery",
	"./testdata/relayresolve",
}

// TestRelayOnlyLinksNoDHT guards the split of the Mainline backend into
// its own package: a relay-only program must not link the DHT library
// (before the split it pulled 29 anacrolix packages into such a binary).
// It asks the go command for each package's dependencies, as a user's
// build would resolve them, and builds relayresolve to check it compiles.
func TestRelayOnlyLinksNoDHT(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("needs the go command to list dependencies: %v", err)
	}
	for _, pkg := range relayOnlyPackages {
		out, err := exec.Command(gocmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderrOf(err))
		}
		deps := strings.Fields(string(out))
		var dht []string
		for _, d := range deps {
			if strings.HasPrefix(d, dhtModulePrefix) {
				dht = append(dht, d)
			}
		}
		if len(dht) > 0 {
			t.Errorf("%s depends on %d DHT packages (want none), e.g. %s", pkg, len(dht), dht[0])
		}
		t.Logf("%s: %d non-standard packages", pkg, len(deps))
	}

	bin := filepath.Join(t.TempDir(), "relayresolve")
	build := exec.Command(gocmd, "build", "-o", bin, "./testdata/relayresolve")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/relayresolve: %v\n%s", err, out)
	}
	if fi, err := os.Stat(bin); err == nil {
		t.Logf("relayresolve binary: %d bytes", fi.Size())
	}
}

func stderrOf(err error) []byte {
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}
