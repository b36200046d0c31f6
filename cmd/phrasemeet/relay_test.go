package main

import (
	"bufio"
	"bytes"
	"context"
	le "encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// boltFile writes a relay store of n packets at path and returns them.
func boltFile(t *testing.T, path string, n int) []*pkarrclient.SignedPacket {
	t.Helper()
	s, err := pkarrrelay.OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*pkarrclient.SignedPacket
	for range n {
		sk, err := pkarrclient.GenerateSecretKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := pkarrclient.NewBuilder().TXT("_x", 300, strings.Repeat("v", 600)).Sign(sk)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// junkAllButHeaders overwrites every page of a bbolt file but the two
// metas and the freelist page with random bytes.
func junkAllButHeaders(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{1})
	for pg := 2; (pg+1)*4096 <= len(b); pg++ {
		page := b[pg*4096:]
		if le.LittleEndian.Uint16(page[8:]) == 0x10 && le.LittleEndian.Uint64(page) == uint64(pg) {
			continue // the freelist page
		}
		junk := make([]byte, 4096)
		rng.Read(junk)
		if _, err := f.WriteAt(junk, int64(pg*4096)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelayRefusesDamagedStore: `phrasemeet relay` on a damaged bbolt file
// exits 1 with one line naming the damage, never a goroutine trace.
func TestRelayRefusesDamagedStore(t *testing.T) {
	t.Parallel()
	good := filepath.Join(t.TempDir(), "good.db")
	boltFile(t, good, 60)
	file, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func([]byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)/3] },
		"garbage":       func(b []byte) []byte { return bytes.Repeat([]byte("not a bbolt file "), 4000) },
		"damaged pages": nil, // junkAllButHeaders
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "relay.db")
			b := bytes.Clone(file)
			if damage != nil {
				b = damage(b)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if damage == nil {
				junkAllButHeaders(t, path)
			}
			code, stdout, stderr := cli(t, nil, "relay", "--listen", "127.0.0.1:0", "--store", path)
			if code != 1 || !strings.HasPrefix(stderr, "phrasemeet relay: ") || !strings.Contains(stderr, "store file damaged") {
				t.Fatalf("relay on a %s store: exit %d\nstdout: %s\nstderr: %s", name, code, stdout, stderr)
			}
			assertCleanError(t, stderr)
			t.Logf("%s: %s", name, strings.TrimSpace(stderr))
		})
	}
}

// TestRelaySurvivesStoreDamagedWhileServing: pages of the store damaged
// under a running relay make GETs and PUTs of the keys they hold answer
// 500; the process stays up, keeps answering, and stops cleanly.
func TestRelaySurvivesStoreDamagedWhileServing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "relay.db")
	packets := boltFile(t, path, 60)
	relay := startRelay(t, path)
	keyURL := func(p *pkarrclient.SignedPacket) string { return relay.url + "/" + p.PublicKey().String() }
	do := func(method, url string, body []byte) int {
		t.Helper()
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v (did the relay die?)\n%s", method, url, err, relay.Output())
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(http.MethodGet, keyURL(packets[0]), nil); code != http.StatusOK {
		t.Fatalf("GET before the damage: %d", code)
	}
	junkAllButHeaders(t, path)
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := pkarrclient.NewBuilder().TXT("_x", 300, "after").Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if code := do(http.MethodGet, keyURL(packets[0]), nil); code != http.StatusInternalServerError {
			t.Errorf("GET over a damaged page: %d, want 500", code)
		}
		if code := do(http.MethodPut, keyURL(fresh), fresh.RelayPayload()); code != http.StatusInternalServerError {
			t.Errorf("PUT over a damaged page: %d, want 500", code)
		}
	}
	if code := do(http.MethodGet, relay.url+"/", nil); code != http.StatusOK {
		t.Errorf("index page after the damage: %d", code)
	}
	// The recency of the GET before the damage cannot be written at
	// shutdown: exit status 1 and a last line that says why, or 0.
	_, err = relay.Stop(syscall.SIGTERM, 30*time.Second)
	stderr := strings.TrimSpace(relay.Text(proctest.Stderr))
	last := stderr[strings.LastIndex(stderr, "\n")+1:]
	if err != nil && !strings.HasPrefix(last, "phrasemeet relay: ") {
		t.Fatalf("relay exit after SIGTERM: %v\n%s", err, relay.Output())
	}
	if err != nil && !strings.Contains(last, "store file damaged") {
		t.Errorf("relay's last words: %q", last)
	}
	if out := relay.Output(); strings.Contains(out, "goroutine ") {
		t.Errorf("relay output holds a trace:\n%s", out)
	}
}

// TestRelayOneIPCannotExhaustConnections: a relay under a small open-file
// limit, and addresses opening connections and leaving them idle, as a
// client's keep-alive pool or an attacker would: first one address, then
// eight. A client from another address is still served: the relay caps
// connections per address, and in all below what the system allows it,
// where it used to accept until accept4 failed with "too many open files"
// and then serve nobody.
func TestRelayOneIPCannotExhaustConnections(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh to lower the relay's open-file limit")
	}
	const fileLimit = 160
	cmd := exec.Command("sh", "-c", `ulimit -n `+strconv.Itoa(fileLimit)+` && exec "$0" "$@"`, binary,
		"relay", "--listen", "127.0.0.1:0", "--store", "memory", "--write-rate", "0", "--read-rate", "0", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "PHRASEMEET_RELAYS="+deadRelay, bootstrapEnv+"="+deadBootstrap)
	p := proctest.Start(t, "relay", cmd)
	url := p.WaitLine(proctest.Stdout, servingLine, readyTimeout)[1]
	addr := strings.TrimPrefix(url, "http://")

	// Twice the file limit's worth of connections, each sending one
	// request and then kept open and idle: from 127.0.0.2 alone, then
	// from 127.0.0.2 to 127.0.0.9.
	for _, addrs := range []int{1, 8} {
		flood(t, addr, addrs, 2*fileLimit)
		fresh := &http.Client{
			Timeout: 20 * time.Second,
			Transport: &http.Transport{DialContext: (&net.Dialer{
				LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 100)},
			}).DialContext},
		}
		resp, err := fresh.Get(url + "/")
		fresh.CloseIdleConnections()
		if err != nil {
			t.Fatalf("after a flood from %d addresses, a client from another got nothing: %v\n%s", addrs, err, p.Output())
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after a flood from %d addresses, a client from another: %d", addrs, resp.StatusCode)
		}
	}
	if out := p.Text(proctest.Stderr); strings.Contains(out, "too many open files") {
		t.Errorf("the relay ran out of file descriptors:\n%s", out)
	}
}

// flood opens n connections to addr spread over the addresses 127.0.0.2
// and on (addrs of them), sends one request on each, and keeps them open
// until the test ends.
func flood(t *testing.T, addr string, addrs, n int) {
	var (
		mu     sync.Mutex
		held   []net.Conn
		served int
	)
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%addrs))}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
				return
			}
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					served++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d addresses: %d connections opened, %d of them served", addrs, len(held), served)
}

// TestRelayConnLimitFlags: --max-conns-per-ip reaches the server, and
// impossible limits are refused as usage errors.
func TestRelayConnLimitFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--max-conns", "-1"},
		{"--max-conns-per-ip", "-1"},
		{"--max-conns", "10", "--max-conns-per-ip", "20"},
	} {
		code, _, stderr := cli(t, nil, append([]string{"relay", "--listen", "127.0.0.1:0"}, args...)...)
		if code != 2 || !strings.HasPrefix(stderr, "phrasemeet relay: ") {
			t.Errorf("relay %v: exit %d %q, want a usage error", args, code, stderr)
		}
	}

	p := startProc(t, nil, "relay", "--listen", "127.0.0.1:0", "--store", "memory", "--max-conns-per-ip", "3",
		"--read-rate", "0", "--log-level", "warn")
	url := p.WaitLine(proctest.Stdout, servingLine, readyTimeout)[1]
	addr := strings.TrimPrefix(url, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 10 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: relay\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	open := 0
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	if open > 3 {
		t.Errorf("127.0.0.2 holds %d connections with --max-conns-per-ip 3", open)
	}
}
