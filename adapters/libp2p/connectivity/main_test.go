package connectivity_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes what it starts; goleak checks that nothing the
// Manager, the adapters or the hosts started outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
