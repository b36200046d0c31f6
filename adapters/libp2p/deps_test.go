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
// brings its own Discoverer links none of them through this package; and
// what a host needs to reach members behind NATs lives in
// adapters/libp2p/connectivity, which needs no rendezvous. The dependency
// goes one way: connectivity links neither the adapter nor the
// rendezvous, and the adapter does not link connectivity (it satisfies
// connectivity.Members without knowing it); passphrase joins the two.
//
// go.uber.org/fx is a special case: go-libp2p itself links it (it builds
// every host as an fx app), and connectivity hands go-libp2p its options,
// so fx is allowed exactly when go-libp2p links it, and nothing of it
// beyond what go-libp2p links.
func TestAdapterDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list the dependencies with: %v", err)
	}
	const (
		module  = "github.com/phrasemeet/discovery"
		adapter = module + "/adapters/libp2p"
		conn    = adapter + "/connectivity"
	)
	// Neither links the rendezvous, the module's internals (but for the
	// retry delay's small package, which links nothing), or fx beyond
	// go-libp2p; forbidden matches a package and those under it, exact
	// the package alone.
	rendezvous := []string{
		"golang.org/x/crypto/argon2",
		"github.com/zeebo/blake3",
		"github.com/anacrolix/",
		module + "/pkarrclient",
		module + "/slotdiscovery",
		module + "/internal/",
		adapter + "/passphrase",
		"go.uber.org/fx",
	}
	for _, c := range []struct {
		pkg       string
		forbidden []string
		exact     []string
		allowed   []string
	}{
		{pkg: adapter, forbidden: append(rendezvous, conn),
			allowed: []string{module + "/internal/backoff", "github.com/jonboulle/clockwork"}},
		{pkg: conn, forbidden: rendezvous, exact: []string{adapter},
			allowed: []string{"github.com/jonboulle/clockwork"}},
	} {
		t.Run(c.pkg[len(module)+1:], func(t *testing.T) {
			checkDeps(t, goTool, module, c.pkg, c.forbidden, c.exact, set(append(c.allowed, c.pkg)))
		})
	}
}

// checkDeps checks that self links nothing forbidden (or exact) that
// go-libp2p does not link itself, and nothing beyond go-libp2p, the root
// package and allowed.
func checkDeps(t *testing.T, goTool, root, self string, forbidden, exact []string, allowed map[string]bool) {
	deps := nonStdDeps(t, goTool, self)
	// What the go-libp2p packages self imports link (multiaddr, libp2p's
	// address format, counts as go-libp2p), and what the root package
	// links.
	var fromLibp2p []string
	for _, p := range goList(t, goTool, "-f", "{{join .Imports \"\\n\"}}", self) {
		if p == "github.com/libp2p/go-libp2p" || strings.HasPrefix(p, "github.com/libp2p/go-libp2p/") ||
			strings.HasPrefix(p, "github.com/multiformats/") {
			fromLibp2p = append(fromLibp2p, p)
		}
	}
	if len(fromLibp2p) == 0 {
		t.Fatalf("%s imports no go-libp2p package", self)
	}
	libp2p := set(nonStdDeps(t, goTool, fromLibp2p...))
	rootDeps := set(nonStdDeps(t, goTool, root))
	var bad []string
	for _, p := range deps {
		if libp2p[p] || allowed[p] {
			continue
		}
		if slices.Contains(exact, p) || slices.ContainsFunc(forbidden, func(f string) bool {
			return p == f || strings.HasPrefix(p, strings.TrimSuffix(f, "/")+"/")
		}) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s links %d packages it must not: %s", self, len(bad), strings.Join(bad, " "))
	}
	var extra []string
	for _, p := range deps {
		if !libp2p[p] && !rootDeps[p] && !allowed[p] {
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
