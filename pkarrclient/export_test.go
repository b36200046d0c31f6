package pkarrclient

import (
	"net/http"
	"testing"
)

// LoopbackHTTPClient gives the external tests (package pkarrclient_test)
// the same dial guard as the internal ones: an HTTP client that refuses
// anything but a loopback address. It exists only in test builds.
func LoopbackHTTPClient(t testing.TB) *http.Client { return loopbackHTTPClient(t, nil) }
