package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/examples/chat/internal/chat"
	"github.com/phrasemeet/discovery/internal/passphrase"
)

// runIn runs a command line in process, with env as the whole
// environment and no standard input.
func runIn(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, nil, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	const secret = "hunter2 hunter2 hunter2"
	good := map[string]string{passphrase.EnvVar: "a good passphrase for tests", "PHRASEMEET_RELAYS": "http://127.0.0.1:1"}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{good, []string{"--passphrase=" + secret}, 2, "there is no --passphrase flag"},
		{good, []string{"-secret", secret}, 2, "there is no --secret flag"},
		{good, []string{secret}, 2, "takes no arguments, got 1"},
		{good, []string{"--discovery", "carrier-pigeon"}, 2, "want slots, mdns or both"},
		{good, []string{"--relay", "local:0"}, 2, "want local or local:PORT"},
		{good, []string{"--relay", "ftp://user:" + secret + "@example.org"}, 2, "invalid relay URL"},
		{good, []string{"--discovery", "mdns", "--relay", "local"}, 2, "--discovery mdns asks no relay"},
		{good, []string{"--nick", "two words"}, 2, "--nick"},
		{map[string]string{}, nil, 2, "no passphrase: set $PHRASEMEET_PASSPHRASE"},
		{map[string]string{passphrase.EnvVar: "hunter2"}, nil, 2, "7 characters, want at least 12"},
		{good, []string{"--bogus"}, 2, "flag provided but not defined"},
		{good, []string{"--reachability", "sometimes"}, 2, "--reachability: reachability \"sometimes\": want auto, private or public"},
		{good, []string{"--circuit-relay", "/ip4/198.51.100.1/tcp/4001"}, 2, "--circuit-relay: circuit relay \"/ip4/198.51.100.1/tcp/4001\": want an address ending in /p2p/<peer ID>"},
		{good, []string{"--public-cidr", "198.51.100.7/24"}, 2, "--public-cidr: public CIDR \"198.51.100.7/24\" has host bits set"},
		{map[string]string{passphrase.EnvVar: "a good passphrase for tests", circuitRelaysEnv: "nonsense"}, nil, 2, "$PHRASEMEET_CIRCUIT_RELAYS: circuit relay \"nonsense\""},
	} {
		code, stdout, stderr := runIn(t, tc.env, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("chat %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
		if strings.Contains(stdout+stderr, "hunter2") {
			t.Errorf("chat %q printed the passphrase: %q", tc.args, stdout+stderr)
		}
	}
}

func TestHelpHidesTestFlags(t *testing.T) {
	code, _, stderr := runIn(t, nil, "-h")
	if code != 0 || !strings.Contains(stderr, "--relay") || strings.Contains(stderr, hiddenPrefix) {
		t.Fatalf("-h: exit %d, %q", code, stderr)
	}
}

// TestPassphraseFile: --passphrase-file is read, less its line end (the
// 7 characters refused are the file's "hunter2"), and refused when other
// users can read it, without showing what it holds. internal/passphrase
// tests the reading itself.
func TestPassphraseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(path, []byte("hunter2\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	relays := map[string]string{"PHRASEMEET_RELAYS": "http://127.0.0.1:1"}
	for _, tc := range []struct {
		mode os.FileMode
		code int
		want string
	}{
		{0o600, 2, "7 characters, want at least 12"},
		{0o644, 1, "accessible by other users"},
	} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runIn(t, relays, "--passphrase-file", path)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("mode %04o: exit %d, stderr %q; want exit %d and %q", tc.mode, code, stderr, tc.code, tc.want)
		}
		if strings.Contains(stdout+stderr, "hunter2") {
			t.Errorf("mode %04o: the passphrase was printed: %q", tc.mode, stdout+stderr)
		}
	}
}

func TestRelayURLs(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	urls, local, err := relayURLs([]string{"local:7000", "http://127.0.0.1:9"}, env("http://ignored"))
	if err != nil || local != "127.0.0.1:7000" || strings.Join(urls, " ") != "http://127.0.0.1:9" {
		t.Fatalf("flags: %q %q %v", urls, local, err)
	}
	urls, local, err = relayURLs(nil, env(" local "))
	if err != nil || local != "127.0.0.1:6881" || len(urls) != 0 {
		t.Fatalf("env local: %q %q %v", urls, local, err)
	}
	urls, _, err = relayURLs(nil, env(""))
	if err != nil || len(urls) == 0 || !strings.HasPrefix(urls[0], "https://") {
		t.Fatalf("default: %q %v; want the public relays", urls, err)
	}
}

// The connectivity flags: --circuit-relay replaces the environment's
// relays, which are split at commas and spaces; CIDRs and the
// reachability are parsed.
func TestConnectivityFlags(t *testing.T) {
	const (
		id1 = "12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv"
		id2 = "12D3KooWLn8EL5HSAPgMqNhpMtUPqWzeeuXsardfr9WhVDbL6Rya"
	)
	env := func(k string) string {
		if k == circuitRelaysEnv {
			return "/ip4/198.51.100.1/tcp/4001/p2p/" + id1 + ", /ip4/198.51.100.1/udp/4001/quic-v1/p2p/" + id1 + " /ip4/203.0.113.9/tcp/1/p2p/" + id2
		}
		return ""
	}
	var cfg chat.Config
	if err := connectivityFlags(&cfg, nil, []string{"198.51.100.0/24", "10.1.0.0/16"}, "private", env); err != nil {
		t.Fatal(err)
	}
	if len(cfg.CircuitRelays) != 2 || cfg.CircuitRelays[0].ID.String() != id1 || len(cfg.CircuitRelays[0].Addrs) != 2 ||
		cfg.CircuitRelays[1].ID.String() != id2 {
		t.Errorf("relays from the environment: %v", cfg.CircuitRelays)
	}
	if cfg.Reachability != connectivity.ReachabilityPrivate || fmt.Sprint(cfg.PublicCIDRs) != "[198.51.100.0/24 10.1.0.0/16]" {
		t.Errorf("reachability %q, CIDRs %v", cfg.Reachability, cfg.PublicCIDRs)
	}
	cfg = chat.Config{}
	if err := connectivityFlags(&cfg, []string{"/ip4/192.0.2.1/tcp/1/p2p/" + id2}, nil, "auto", env); err != nil {
		t.Fatal(err)
	}
	if len(cfg.CircuitRelays) != 1 || cfg.CircuitRelays[0].ID.String() != id2 {
		t.Errorf("--circuit-relay does not replace the environment's: %v", cfg.CircuitRelays)
	}
}
