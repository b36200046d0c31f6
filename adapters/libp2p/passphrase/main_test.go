package passphrase_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes what it starts; goleak checks that nothing the fx
// module, the adapter or the hosts started outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
