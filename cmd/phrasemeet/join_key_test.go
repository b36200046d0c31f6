package main

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// keyFile writes a key with keygen, as a user would, and returns its path
// and ID (the hex of its public key).
func keyFile(t *testing.T) (path, id string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "id.key")
	if code, _, stderr := runCLI(t, nil, "keygen", "--out", path); code != 0 {
		t.Fatalf("keygen: exit %d %s", code, stderr)
	}
	sk, err := pkarrclient.LoadSecretKey(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Destroy()
	return path, hex.EncodeToString(sk.PublicKey().Bytes())
}

// TestJoinSecretFile: join --secret-file announces the key's ID, signed;
// another join finds it, and the slot holds no entry that fails its
// proof.
func TestJoinSecretFile(t *testing.T) {
	relay := testRelay(t)
	vars := map[string]string{passphraseEnv: secretPhrase}
	path, id := keyFile(t)
	a := startJoin(t, vars, "--relay", relay, "--secret-file", path, "--addr", "/ip4/192.0.2.1/tcp/1")
	if got := a.wait(announcedLine)[1]; got != id {
		t.Fatalf("announced %s, the key's ID is %s", got, id)
	}
	b := startJoin(t, vars, "--relay", relay)
	bID := b.wait(announcedLine)[1]
	b.wait(regexp.MustCompile(`(?m)^found ` + id + ` \[/ip4/192.0.2.1/tcp/1\] via slots$`))
	a.wait(regexp.MustCompile(`(?m)^found ` + bID + ` via slots$`))
	for _, s := range slotsJSON(t, vars, "--relay", relay) {
		if s.Unproven != 0 {
			t.Errorf("slot %d: %d unproven entries", s.Index, s.Unproven)
		}
	}
	// The same key under --id, in capitals, is the same identity.
	a.stop()
	c := startJoin(t, vars, "--relay", relay, "--secret-file", path, "--id", strings.ToUpper(id))
	c.wait(regexp.MustCompile(`(?m)^announced ` + strings.ToUpper(id) + ` `))
	b.wait(regexp.MustCompile(`(?m)^found ` + strings.ToUpper(id) + ` via slots$`))
}

// TestJoinKeyUsageErrors: an ID that is a key needs its key; a key file
// must be a regular file (a FIFO is refused at once, not waited on) and
// hold the key of the ID given.
func TestJoinKeyUsageErrors(t *testing.T) {
	vars := map[string]string{passphraseEnv: secretPhrase}
	path, id := keyFile(t)
	_, otherID := keyFile(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--id", otherID}, 2, "is a public key, and the default profile signs entries about keys"},
		{[]string{"--id", strings.ToUpper(otherID)}, 2, "is a public key"},
		{[]string{"--id", "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"}, 2, "is a public key"},
		{[]string{"--secret-file", fifo}, 2, "is not a regular file"},
		{[]string{"--secret-file", t.TempDir()}, 2, "is not a regular file"},
		{[]string{"--secret-file", path, "--id", otherID}, 2, "--id is not the public key of --secret-file (" + id + ")"},
		{[]string{"--secret-file", path, "--id", "peer-a"}, 2, "--id is not the public key of --secret-file"},
		{[]string{"--secret-file", filepath.Join(t.TempDir(), "missing")}, 1, "--secret-file: stat"},
	} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			code, stdout, stderr := runCLI(t, vars, append([]string{"join"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("join %q: exit %d %q, want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
			}
			assertNoSecret(t, stdout+stderr)
		}()
		select {
		case <-done:
		case <-time.After(readyTimeout):
			t.Fatalf("join %q did not return", tc.args)
		}
	}
	// The can-sync profile's wire carries no proof: an ID that is a key
	// is announced there without one, as can-sync does.
	j := startJoin(t, vars, "--profile", "can-sync", "--id", otherID, "--relay", testRelay(t))
	j.wait(regexp.MustCompile(`(?m)^announced ` + otherID + ` \(profile can-sync\)`))
}

// TestJoinIgnoresForgedEntries: a member who knows the passphrase runs a
// discoverer of its own with the rule off and a clock 110 s ahead, and
// announces a's ID with its own address, then buries it, again and
// again. b, a join, keeps a at a's address and never prints it lost.
func TestJoinIgnoresForgedEntries(t *testing.T) {
	relay := testRelay(t)
	vars := map[string]string{passphraseEnv: secretPhrase}
	a := startJoin(t, vars, "--relay", relay, "--addr", "/ip4/192.0.2.1/tcp/1")
	aID := a.wait(announcedLine)[1]
	b := startJoin(t, vars, "--relay", relay)
	b.wait(regexp.MustCompile(`(?m)^found ` + aID + ` \[/ip4/192.0.2.1/tcp/1\] via slots$`))

	g, err := slotdiscovery.DeriveGroup([]byte(secretPhrase))
	if err != nil {
		t.Fatal(err)
	}
	evil, err := slotdiscovery.New(newTestClient(t, relay), g,
		slotdiscovery.WithIDSchemes(),
		slotdiscovery.WithClock(shiftedClock{clockwork.NewRealClock(), -110 * time.Second}),
		slotdiscovery.WithStaleAfter(10*time.Minute), // carries everyone else forward
		slotdiscovery.WithRepublishInterval(500*time.Millisecond),
		slotdiscovery.WithVerifyDelay(5*time.Millisecond, 30*time.Millisecond),
		slotdiscovery.WithPutBudget(100, 20), slotdiscovery.WithGetBudget(100, 100, 20), slotdiscovery.WithRequestBudget(1000, 1000))
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close(context.Background())
	ctx := context.Background()
	forged := discovery.Record{ID: aID, Addrs: []string{"/ip4/203.0.113.66/tcp/4001"}}
	deadline := time.Now().Add(5 * time.Second)
	rounds := 0
	for time.Now().Before(deadline) {
		ann, err := evil.Announce(ctx, forged)
		if err != nil {
			t.Fatal(err)
		}
		for evil.Slot(aID) < 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		ann.Leave(ctx)
		rounds++
	}
	// b's scans run every second in its first minute: several saw the
	// forgeries.
	time.Sleep(2 * time.Second)
	if out := b.stdout.String(); strings.Contains(out, "203.0.113.66") || strings.Contains(out, "lost "+aID) {
		t.Errorf("after %d forged rounds b printed:\n%s", rounds, out)
	}
}
