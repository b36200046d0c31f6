package mdnsdiscovery

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/phrasemeet/discovery/internal/netnstest"
)

// The tests run in a network namespace of their own (netnstest), so their
// multicast stays on that namespace's loopback and never reaches the
// machine's LAN. Every test closes what it starts; goleak checks that no
// browse, session, announcement or zeroconf goroutine outlives the tests.
func TestMain(m *testing.M) {
	netnstest.Main(leakChecked{m})
}

// leakChecked runs the tests, then fails the run if goroutines remain.
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	if err := goleak.Find(); code == 0 && err != nil {
		println("goleak: goroutines outlived the tests:", err.Error())
		return 1
	}
	return code
}
