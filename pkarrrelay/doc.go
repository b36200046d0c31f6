// Package pkarrrelay is a self-hostable pkarr relay: an HTTP server that
// stores signed pkarr packets and hands them out again, speaking the relay
// API of pkarr's design/relays.md.
//
// The package follows net/http's split between what to do with a request and
// how to run a server:
//
//   - [Handler] is the relay API as an [net/http.Handler]. It verifies every
//     PUT, rate-limits per client address, and answers GETs from a [Store]
//     without any cryptography or DNS parsing. Mount it anywhere.
//   - [Server] wraps a Handler with the timeouts and limits a public server
//     needs against slow or hostile clients (connection caps per client
//     address and in all, see [ServerMaxConns]), serves Prometheus metrics
//     beside the API, and shuts down gracefully when its context ends.
//   - [Store] holds the packets. [NewMemoryStore] keeps them in memory;
//     [OpenBoltStore] keeps them durably in a bbolt file. Both evict the
//     least recently used packet when full.
//
// A minimal relay:
//
//	store := pkarrrelay.NewMemoryStore(100_000)
//	h, err := pkarrrelay.NewHandler(store)
//	...
//	srv, err := pkarrrelay.NewServer(h)
//	...
//	err = srv.ListenAndServe(ctx, ":8080")
//
// With [WithUpstream] the relay fronts a further backend, such as the
// Mainline DHT, as pkarr's relay does: a PUT is published upstream (in the
// background, after the PUT is answered, with retries and at most one
// pending publish per key), a GET that misses asks the upstream, and a
// stored packet older than its TTL is served at once and refreshed in the
// background. Upstream calls are shared between concurrent requests for one
// key, "not found" is remembered for a while, and a budget of calls in
// flight and per second protects the upstream: when it is spent, a miss
// answers 503 with Retry-After rather than queueing. [Handler.Close]
// (called by [Server.Serve] at shutdown) stops the background lookups and
// publishes.
//
// The relay differs from pkarr's own in one deliberate way: it refuses
// packets stamped further in the future than a small margin (pkarr accepts
// them, and such a packet blocks every later honest write for its key).
// If-Modified-Since is compared at whole seconds, as HTTP dates are and as
// pkarr's relay and net/http do, so echoing Last-Modified revalidates.
package pkarrrelay
