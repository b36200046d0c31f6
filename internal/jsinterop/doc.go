// Package jsinterop holds tests, and nothing else, that check phrasemeet's
// pkarr parts against an independent implementation: pkarr's JavaScript
// package (1.3.0: signed packets, relay client, relay server, DHT wrapper)
// and bittorrent-dht (11.0.12), run by node on 127.0.0.1.
//
// The JS side lives in js/: package.json and package-lock.json pin it, and
// driver.mjs runs it, taking one JSON request a line on standard input.
// guard.mjs refuses every datagram, DNS lookup and fetch that would leave
// loopback (pkarr and k-rpc default to public DHT routers), and the tests
// fail on any refusal.
//
// The tests install the JS side with `npm ci` into a cache directory keyed
// by the lock file's hash (under os.UserCacheDir, or a temporary directory
// when there is none), so repeated runs do not reinstall; they skip, saying
// why, when node or npm is missing or the install fails (no registry).
// Set PHRASEMEET_JSINTEROP=require to make such a skip a failure instead.
package jsinterop
