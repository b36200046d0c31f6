package pkarrclient

import (
	"net/http"
	"testing"
)

// LoopbackHTTPClient gives the external tests (package pkarrclient_test)
// the same dial guard as the internal ones: an HTTP client that refuses
// anything but a loopback address. It exists only in test builds.
func LoopbackHTTPClient(t testing.TB) *http.Client { return loopbackHTTPClient(t, nil) }

// NewTestSecretKey and TXTPacket give the external tests the internal
// tests' key and packet builders, so both sides sign fixtures the same way.
var (
	NewTestSecretKey = newSecretKey
	TXTPacket        = txtPacket
)
