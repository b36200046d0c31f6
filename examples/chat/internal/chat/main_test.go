package chat_test

import (
	"testing"

	"github.com/phrasemeet/discovery/internal/netnstest"
)

// The tests run in a network namespace of their own (netnstest): the
// mDNS room multicasts on that namespace's loopback only, never on the
// machine's LAN; everything else runs on 127.0.0.1 as anywhere.
func TestMain(m *testing.M) { netnstest.Main(m) }
