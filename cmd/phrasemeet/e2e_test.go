package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// These tests run the real binary as separate processes: the relay a user
// starts, killed the way an operator's machine kills it.

var binary string

func TestMain(m *testing.M) {
	// Every process a test starts inherits these unless told otherwise.
	os.Setenv("PHRASEMEET_RELAYS", deadRelay)
	os.Setenv(bootstrapEnv, deadBootstrap)
	proctest.Main(m, proctest.Binary{Name: "phrasemeet", Pkg: ".", Path: &binary})
}

// relayProc is a running `phrasemeet relay` process.
type relayProc struct {
	*proctest.Proc
	url string
}

var servingLine = regexp.MustCompile(`relay serving (http://\S+)`)

// startRelay starts a relay process and waits for the line that says it
// accepts connections. Rate limits are off: the tests send many requests
// from one address.
func startRelay(t *testing.T, store string) *relayProc {
	t.Helper()
	p := startProc(t, nil, "relay", "--listen", "127.0.0.1:0", "--store", store,
		"--write-rate", "0", "--read-rate", "0", "--log-level", "warn")
	return &relayProc{Proc: p, url: p.WaitLine(proctest.Stdout, servingLine, 30*time.Second)[1]}
}

// cli runs the binary to completion.
func cli(t *testing.T, extraEnv []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// The dead relay and bootstrap node first, so extraEnv can override
	// them: a command that forgets --relay or --bootstrap must not reach
	// the public relays or DHT routers.
	cmd.Env = append(append(os.Environ(), "PHRASEMEET_RELAYS="+deadRelay, bootstrapEnv+"="+deadBootstrap), extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running %q: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func assertCleanError(t *testing.T, stderr string) {
	t.Helper()
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("error is not one clean line: %q", stderr)
	}
}

func TestProcessesKeygenPublishResolve(t *testing.T) {
	relay := startRelay(t, "memory")
	keyFile := filepath.Join(t.TempDir(), "secret")

	code, stdout, stderr := cli(t, nil, "keygen", "--out", keyFile)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	key := strings.TrimSpace(stdout)

	code, stdout, stderr = cli(t, nil, "publish", "--secret-file", keyFile, "--relay", relay.url,
		"--txt", "_hello=world", "--txt", "_kv=a=b c", "--record", "@ 60 IN A 192.0.2.9", "--ttl", "120")
	if code != 0 || !strings.Contains(stdout, "to 1 of 1 relays") {
		t.Fatalf("publish: %d %q %q", code, stdout, stderr)
	}

	// Relays from the environment, key given as a URL, flags after it.
	code, stdout, stderr = cli(t, []string{"PHRASEMEET_RELAYS=" + relay.url}, "resolve", "https://"+key+"/x", "--most-recent")
	if code != 0 {
		t.Fatalf("resolve: %d %s", code, stderr)
	}
	for _, want := range []string{
		"; " + key + "  time ",
		"_hello." + key + ".\t120\tIN\tTXT\t\"world\"",
		"_kv." + key + ".\t120\tIN\tTXT\t\"a=b c\"",
		key + ".\t60\tIN\tA\t192.0.2.9",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("resolve output lacks %q:\n%s", want, stdout)
		}
	}

	other, _ := pkarrclient.GenerateSecretKey(nil)
	code, _, stderr = cli(t, nil, "resolve", "--relay", relay.url, other.PublicKey().String())
	if code != exitNotFound || !strings.Contains(stderr, "not found") {
		t.Errorf("resolve of an unknown key: exit %d %q", code, stderr)
	}
	assertCleanError(t, stderr)

	code, _, stderr = cli(t, nil, "resolve", "--relay", "http://127.0.0.1:1", key)
	if code != exitNoAnswer {
		t.Errorf("resolve from a dead relay: exit %d %q", code, stderr)
	}
	assertCleanError(t, stderr)
}

// TestRelaySurvivesSIGKILL checks that every packet the relay acknowledged
// is still served after the process is killed without warning and started
// again on the same file.
func TestRelaySurvivesSIGKILL(t *testing.T) {
	storePath := filepath.Join(t.TempDir(), "relay.db")
	relay := startRelay(t, storePath)
	client := newTestClient(t, relay.url)
	ctx := context.Background()

	const keys = 40
	var want []*pkarrclient.SignedPacket
	for i := range keys {
		sk, err := pkarrclient.GenerateSecretKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		var last *pkarrclient.SignedPacket
		// Several versions per key; the relay must keep the newest.
		for v := range 1 + i%3 {
			p, err := pkarrclient.NewBuilder().TXT("_v", 300, fmt.Sprint(v)).Sign(sk)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.Publish(ctx, p); err != nil {
				t.Fatalf("publish %d.%d: %v", i, v, err)
			}
			last = p
		}
		want = append(want, last)
	}
	// Acknowledged means durable: kill at once, no grace.
	if _, err := relay.Stop(syscall.SIGKILL, stopTimeout); err == nil {
		t.Fatal("relay exited cleanly after SIGKILL?")
	}

	again := startRelay(t, storePath)
	fresh := newTestClient(t, again.url)
	for i, p := range want {
		got, err := fresh.Resolve(ctx, p.PublicKey(), pkarrclient.NetworkOnly())
		if err != nil {
			t.Fatalf("key %d lost after SIGKILL: %v", i, err)
		}
		if !got.Equal(p) {
			t.Fatalf("key %d: got %v, want the newest %v", i, got, p)
		}
	}
}

func TestRelayGracefulShutdown(t *testing.T) {
	storePath := filepath.Join(t.TempDir(), "relay.db")
	relay := startRelay(t, storePath)
	if _, err := relay.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("relay exit after SIGTERM: %v\n%s", err, relay.Output())
	}
	// The file lock is released: a new relay opens the same store.
	startRelay(t, storePath)
}

func TestSecondRelayOnLockedStoreFails(t *testing.T) {
	storePath := filepath.Join(t.TempDir(), "relay.db")
	startRelay(t, storePath)
	code, _, stderr := cli(t, nil, "relay", "--listen", "127.0.0.1:0", "--store", storePath)
	if code != 1 || !strings.Contains(stderr, "locked") {
		t.Fatalf("second relay on a locked store: exit %d %q", code, stderr)
	}
	assertCleanError(t, stderr)
}

func newTestClient(t *testing.T, url string) *pkarrclient.Client {
	t.Helper()
	r, err := pkarrclient.NewRelay(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pkarrclient.NewClient([]pkarrclient.Backend{r})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
