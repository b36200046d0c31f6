// Package mainline is the BitTorrent Mainline DHT backend of pkarrclient:
// a [DHT] stores and finds signed packets as BEP44 mutable items, as a
// passive client or as a full node, and plugs into a [pkarrclient.Client]
// next to relays:
//
//	d, err := mainline.New()
//	...
//	client, err := pkarrclient.NewClient([]pkarrclient.Backend{relay, d})
//
// It is a package of its own because it is the only part of pkarr that
// needs anacrolix/dht, which brings 29 packages with it (anacrolix/torrent,
// missinggo, stm, ...): a program that speaks only to relays imports
// pkarrclient alone and links none of them.
//
// Where anacrolix v2.24.0 falls short (exts/getput waits for a whole
// traversal and ignores acknowledgements, a missing seq or a stray put
// datagram crashes it, its BEP44 store checks cas and sizes wrongly),
// this package runs its own lookups and its own item store on the
// library's traversal and single-query calls; see [DHT] and the comments
// in bep44.go.
//
// The subpackage mainlinetest runs private DHT networks on 127.0.0.1 for
// tests.
package mainline
