package slotdiscovery_test

import (
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/discoverytest"
	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

func TestConformance(t *testing.T) {
	group := func(t *testing.T, n int, url string) []discovery.Discoverer {
		g := slottest.Group(t, "conformance passphrase")
		ds := make([]discovery.Discoverer, n)
		for i := range ds {
			d, err := slotdiscovery.New(slottest.Client(t, url), g, slottest.FastSchedule()...)
			if err != nil {
				t.Fatal(err)
			}
			ds[i] = d
		}
		return ds
	}
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		return group(t, n, slottest.Relay(t))
	}, discoverytest.WithTimeout(15*time.Second),
		// LeaveHonoursContext leaves with a tombstone the relay never
		// acknowledges: the leave bound (5 s) is far above its 100 ms ctx.
		discoverytest.WithStall(func(t *testing.T, n int) ([]discovery.Discoverer, func()) {
			url, stall := slottest.Stallable(t, slottest.RelayHandler(t))
			return group(t, n, url), stall
		}))
}
