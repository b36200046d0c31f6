package mainline_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// TestDHTPublishResolveAcrossNodes publishes from one client and resolves
// from another on private networks of 10 and 30 nodes; a newer packet
// replaces the older, and a stale one is refused and reported as such.
func TestDHTPublishResolveAcrossNodes(t *testing.T) {
	for _, n := range []int{10, 30} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			t.Parallel()
			nw := mainlinetest.New(t, n)
			pub := nw.NewClient()
			res := nw.NewClient()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			sk := newTestSecretKey(t)
			p1 := txtPacket(t, sk, 1_000_000, "one", 300)
			rcpt, err := pub.Publish(ctx, p1)
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			if rcpt.DHTNodes < 1 || rcpt.DHTNodes > 8 {
				t.Fatalf("publish stored on %d nodes, want 1..8", rcpt.DHTNodes)
			}
			t.Logf("stored on %d nodes", rcpt.DHTNodes)

			got, err := res.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey()})
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if !got.Equal(p1) {
				t.Fatalf("resolved %v, want %v", got.Timestamp(), p1.Timestamp())
			}

			p2 := txtPacket(t, sk, 2_000_000, "two", 300)
			if _, err := pub.Publish(ctx, p2); err != nil {
				t.Fatalf("publish newer: %v", err)
			}
			got, err = res.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey(), MostRecent: true})
			if err != nil {
				t.Fatalf("resolve most recent: %v", err)
			}
			if !got.Equal(p2) {
				t.Fatalf("most-recent resolve gave ts %v, want %v", got.Timestamp(), p2.Timestamp())
			}

			_, err = pub.Publish(ctx, p1)
			var perr *mainline.PublishError
			if !errors.Is(err, pkarrclient.ErrNotMostRecent) || !errors.As(err, &perr) || perr.Stale == 0 {
				t.Fatalf("republishing the older packet: got %v, want a PublishError with stale nodes", err)
			}
			t.Logf("stale publish: %v", err)

			_, err = res.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey(), NewerThan: p2.Timestamp()})
			if !errors.Is(err, pkarrclient.ErrNotFound) {
				t.Fatalf("resolve newer than the newest: got %v, want ErrNotFound", err)
			}
		})
	}
}
