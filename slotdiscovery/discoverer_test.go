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
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		url := slottest.Relay(t)
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
	}, discoverytest.WithTimeout(15*time.Second))
}
