package libp2padapter_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The generic adapter depends on go-libp2p and the root interface only.
// The passphrase rendezvous (Argon2, BLAKE3, pkarr, the slot discoverer)
// and the fx module live in adapters/libp2p/passphrase, so a program that
// brings its own Discoverer links none of them through this package.
//
// go.uber.org/fx is a special case: go-libp2p itself links it (it builds
// every host as an fx app), and Connectivity hands go-libp2p its options,
// so fx is allowed exactly when go-libp2p links it, and nothing of it
// beyond what go-libp2p links.
func TestAdapterDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list the dependencies with: %v", err)
	}
	const self = "github.com/phrasemeet/discovery/adapters/libp2p"
	deps := nonStdDeps(t, goTool, self)
	// What the go-libp2p packages the adapter imports link, and what the
	// root package links.
	var fromLibp2p []string
	for _, p := range goList(t, goTool, "-f", "{{join .Imports \"\\n\"}}", self) {
		if p == "github.com/libp2p/go-libp2p" || strings.HasPrefix(p, "github.com/libp2p/go-libp2p/") {
			fromLibp2p = append(fromLibp2p, p)
		}
	}
	if len(fromLibp2p) == 0 {
		t.Fatal("the adapter imports no go-libp2p package")
	}
	libp2p := set(nonStdDeps(t, goTool, fromLibp2p...))
	root := set(nonStdDeps(t, goTool, "github.com/phrasemeet/discovery"))
	var forbidden []string
	// internal/backoff is the module's one backoff-with-jitter helper and
	// links the standard library only; no other internal package may come.
	const backoffPkg = "github.com/phrasemeet/discovery/internal/backoff"
	for _, bad := range []string{
		"golang.org/x/crypto/argon2",
		"github.com/zeebo/blake3",
		"github.com/anacrolix/",
		"github.com/phrasemeet/discovery/pkarrclient",
		"github.com/phrasemeet/discovery/slotdiscovery",
		"github.com/phrasemeet/discovery/internal/",
		"go.uber.org/fx",
	} {
		for _, p := range deps {
			if (p == bad || strings.HasPrefix(p, strings.TrimSuffix(bad, "/")+"/")) && !libp2p[p] && p != backoffPkg {
				forbidden = append(forbidden, p)
			}
		}
	}
	if len(forbidden) > 0 {
		t.Errorf("%s links %d packages it must not: %s", self, len(forbidden), strings.Join(forbidden, " "))
	}
	// Beyond go-libp2p and the root package, only the clock the adapter's
	// timing is tested with, and the backoff helper.
	allowed := set([]string{self, "github.com/jonboulle/clockwork", backoffPkg})
	var extra []string
	for _, p := range deps {
		if !libp2p[p] && !root[p] && !allowed[p] {
			extra = append(extra, p)
		}
	}
	if len(extra) > 0 {
		t.Errorf("%s links %d packages neither go-libp2p nor the root package needs: %s", self, len(extra), strings.Join(extra, " "))
	}
}

// nonStdDeps lists the packages pkgs link, standard library left out.
func nonStdDeps(t *testing.T, goTool string, pkgs ...string) []string {
	t.Helper()
	return goList(t, goTool, append([]string{"-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)...)
}

// goList runs go list with args and returns its non-empty lines.
func goList(t *testing.T, goTool string, args ...string) []string {
	t.Helper()
	out, err := exec.Command(goTool, append([]string{"list"}, args...)...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return slices.DeleteFunc(strings.Split(string(out), "\n"), func(s string) bool { return s == "" })
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}
