package libp2padapter_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes what it starts; goleak checks that nothing the
// adapter, the connector, the connectivity or the hosts started outlives the
// tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
