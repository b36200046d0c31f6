package pkarrclient_test

import (
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/pkarrclient"
)

func TestNewRelayClient(t *testing.T) {
	c, err := pkarrclient.NewRelayClient([]string{"http://127.0.0.1:1/a", "https://relay.example/pkarr"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Backends()); n != 2 {
		t.Fatalf("%d backends, want 2", n)
	}
	if _, err := pkarrclient.NewRelayClient(nil); err == nil {
		t.Fatal("no URL accepted")
	}
	_, err = pkarrclient.NewRelayClient([]string{"https://relay.example", "ftp://user:secret@relay.example"})
	if err == nil || !strings.Contains(err.Error(), "scheme") || !strings.Contains(err.Error(), "relay 2 of 2") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("bad URL: err %v, want a scheme error naming relay 2 of 2, without the password", err)
	}
}
