package chat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/examples/chat/internal/chat"
	"github.com/phrasemeet/discovery/internal/netnstest"
	"github.com/phrasemeet/discovery/mdnsdiscovery"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// timeout bounds every wait: generous, since -race slows libp2p down a
// lot on the small shared machines these tests run on.
const timeout = 30 * time.Second

const passphrase = "chat test passphrase, four words"

// deadRelay is the relay every test configures unless it runs one: a
// loopback port nothing listens on, so nothing can reach a public relay.
const deadRelay = "http://127.0.0.1:1"

// testConfig is a chat on loopback only, with the cheap KDF.
func testConfig(nick string) chat.Config {
	return chat.Config{
		Passphrase: []byte(passphrase),
		Nick:       nick,
		Relays:     []string{deadRelay},
		Listen:     []string{"/ip4/127.0.0.1/tcp/0"},
		Loopback:   true,
		KDF:        chat.TestKDF(),
	}
}

// lines is a writer that tests can wait on, line by line.
type lines struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// wait returns the submatches of the first line matching re.
func (l *lines) wait(t *testing.T, what string, re *regexp.Regexp) []string {
	t.Helper()
	return l.waitOr(t, what, re, func() string { return "" })
}

// waitOr is wait, showing more() as well when it fails.
func (l *lines) waitOr(t *testing.T, what string, re *regexp.Regexp, more func() string) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		text, changed := l.buf.String(), l.changed
		l.mu.Unlock()
		for _, line := range strings.Split(text, "\n") {
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: no line matching %q within %v; got:\n%s\n%s", what, re, timeout, text, more())
		}
	}
}

// running is one chat application in this process.
type running struct {
	t      *testing.T
	name   string
	app    *fx.App
	host   host.Host
	in     *io.PipeWriter
	out    *lines
	status *lines
	stop   sync.Once
}

// start builds and starts a chat with extra fx options (the swaps) and
// stops it when the test ends.
func start(t *testing.T, cfg chat.Config, extra ...fx.Option) *running {
	t.Helper()
	pr, pw := io.Pipe()
	r := &running{t: t, name: cfg.Nick, in: pw, out: newLines(), status: newLines()}
	r.app = fx.New(chat.Options(cfg, chat.IO{In: pr, Out: r.out, Status: r.status}),
		fx.Options(extra...), fx.Populate(&r.host))
	if err := r.app.Err(); err != nil {
		t.Fatalf("building %s: %v", cfg.Nick, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := r.app.Start(ctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", cfg.Nick, err, r.status)
	}
	t.Cleanup(func() { r.close() })
	return r
}

// wait waits for a line of the room, and shows the status lines too if
// none comes.
func (r *running) wait(what string, re *regexp.Regexp) []string {
	r.t.Helper()
	return r.out.waitOr(r.t, what, re, r.status.String)
}

// say types a line.
func (r *running) say(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.in, line+"\n"); err != nil {
		r.t.Fatalf("typing into %s: %v", r.name, err)
	}
}

// quit types /quit, waits for the application to ask to shut down, as
// the command's main would, and stops it.
func (r *running) quit() {
	r.t.Helper()
	r.say("/quit")
	select {
	case <-r.app.Wait():
	case <-time.After(timeout):
		r.t.Fatalf("%s did not shut down after /quit", r.name)
	}
	r.close()
}

func (r *running) close() {
	r.stop.Do(func() {
		r.in.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := r.app.Stop(ctx); err != nil {
			r.t.Errorf("stopping %s: %v", r.name, err)
		}
	})
}

// assertNoPassphrase checks every line a chat printed.
func (r *running) assertNoPassphrase() {
	r.t.Helper()
	if strings.Contains(r.out.String()+r.status.String(), passphrase) {
		r.t.Errorf("%s printed the passphrase", r.name)
	}
}

// shortID is how status lines show a peer: the end of its ID.
func shortID(r *running) string {
	s := r.host.ID().String()
	return "…" + s[len(s)-6:]
}

// who matches how status lines show a member: by nick once the room
// knows it, before that by the end of its ID.
func who(r *running) string {
	return "(?:" + regexp.QuoteMeta(r.name) + "|" + regexp.QuoteMeta(shortID(r)) + ")"
}

func line(format string, args ...any) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(format, args...))
}

// meet waits until every chat has greeted every other by nick.
func meet(t *testing.T, chats ...*running) {
	t.Helper()
	for _, a := range chats {
		for _, b := range chats {
			if a != b {
				a.wait(a.name+" meeting "+b.name, line(`^\* %s (joined|is here) \(%s\)$`, b.name, b.host.ID()))
			}
		}
	}
}

// TestMemoryRoom runs three chats whose slot rendezvous is swapped for the
// in-memory one through fx.Replace: they meet, a line typed in one reaches
// the other two, /peers tells how each was found, and a chat that quits is
// announced as gone in the others.
func TestMemoryRoom(t *testing.T) {
	m := discovery.NewMemory()
	swap := fx.Replace(libp2padapter.MemoryOpener(m))
	alice := start(t, testConfig("alice"), swap)
	bob := start(t, testConfig("bob"), swap)
	carol := start(t, testConfig("carol"), swap)
	meet(t, alice, bob, carol)

	alice.say("hello from alice")
	bob.out.wait(t, "bob", line(`^<alice> hello from alice$`))
	carol.out.wait(t, "carol", line(`^<alice> hello from alice$`))

	// The lower peer ID of a pair dials first, the higher one only after
	// a yield, so a member may first be heard through another before the
	// two connect.
	for _, other := range []*running{alice, carol} {
		bob.status.wait(t, "bob's status", line(`^-- connected to %s `, who(other)))
	}
	bob.say("/peers")
	bob.out.wait(t, "bob's /peers", line(`^\* 2 in the room besides you \(bob\)`))
	for _, other := range []*running{alice, carol} {
		bob.out.wait(t, "bob's /peers", line(`^\*   %s\s+\S+  (here|heard through others); (found via memory after \S+|not found by discovery \(it found us\)); direct, connected since`, other.name))
	}
	bob.status.wait(t, "bob's status", line(`^-- found \S+ via memory: \d peers? in `))

	alice.quit()
	bob.out.wait(t, "bob", line(`^\* alice left`))
	carol.out.wait(t, "carol", line(`^\* alice left`))
	carol.say("/peers")
	carol.out.wait(t, "carol's /peers", line(`^\* 1 in the room besides you \(carol\)`))
	carol.out.wait(t, "carol's /peers", line(`^\*   alice\s+\S+  left; `))
	for _, c := range []*running{alice, bob, carol} {
		c.assertNoPassphrase()
	}
}

// TestMDNSRoom swaps the slot rendezvous for mDNS through fx.Decorate: two
// chats meet on the LAN without any relay. It skips where no interface
// can carry mDNS, or where the tests cannot run in a network namespace of
// their own (main_test.go), so as not to multicast on the machine's LAN.
func TestMDNSRoom(t *testing.T) {
	netnstest.Require(t)
	probe, err := mdnsdiscovery.New([32]byte{1})
	if errors.Is(err, mdnsdiscovery.ErrNoInterface) {
		t.Skipf("no multicast-capable interface for mDNS here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	probe.Close(context.Background())
	swap := fx.Decorate(func(h host.Host, g *slotdiscovery.Group) libp2padapter.Opener { return chat.MDNSOpener(h, g) })
	alice := start(t, testConfig("alice"), swap)
	bob := start(t, testConfig("bob"), swap)
	meet(t, alice, bob)
	bob.status.wait(t, "bob's status", line(`^-- found \S+ via mdns: 1 peer in `))
	bob.say("hello over the LAN")
	alice.out.wait(t, "alice", line(`^<bob> hello over the LAN$`))
}

// freeLoopbackPort returns a port nothing listens on right now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSlotsLocalRelay runs the real slot rendezvous through "--relay
// local": the first chat finds no relay and serves one, the second uses
// it; they report their slots, find each other through it and talk. When
// the serving chat quits, the other takes over serving the relay.
func TestSlotsLocalRelay(t *testing.T) {
	addr := freeLoopbackPort(t)
	cfg := func(nick string) chat.Config {
		c := testConfig(nick)
		c.Relays, c.LocalRelay, c.SlotOptions = nil, addr, chat.TestSchedule()
		return c
	}
	alice := start(t, cfg("alice"))
	alice.status.wait(t, "alice", line(`^-- no relay answered at %s: serving one in this process`, regexp.QuoteMeta(addr)))
	bob := start(t, cfg("bob"))
	bob.status.wait(t, "bob", line(`^-- using the relay at %s$`, regexp.QuoteMeta(addr)))
	meet(t, alice, bob)
	for _, c := range []*running{alice, bob} {
		c.status.wait(t, c.name, line(`^-- announced in slot \d+$`))
		c.status.wait(t, c.name, line(`^-- found \S+ via slots: 1 peer in `))
	}
	alice.say("first line")
	bob.out.wait(t, "bob", line(`^<alice> first line$`))

	alice.quit()
	bob.out.wait(t, "bob", line(`^\* alice left`))
	bob.status.wait(t, "bob", line(`^-- the relay at %s went away: serving one in this process$`, regexp.QuoteMeta(addr)))
	alice.assertNoPassphrase()
	bob.assertNoPassphrase()
}

// TestAloneSaysNobodyGotIt: a line typed with nobody in the room is
// reported as received by nobody, rather than silently dropped.
func TestAloneSaysNobodyGotIt(t *testing.T) {
	alone := start(t, testConfig("alone"), fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())))
	alone.say("anyone?")
	alone.out.wait(t, "alone", line(`^\* nobody else is in the room yet: nobody got that$`))
	alone.say("/bogus")
	alone.out.wait(t, "alone", line(`^\* unknown command /bogus`))
}

func TestWeakPassphraseRefusedWithoutQuotingIt(t *testing.T) {
	cfg := testConfig("x")
	cfg.Passphrase = []byte("zebra")
	app := fx.New(chat.Options(cfg, chat.IO{In: strings.NewReader(""), Out: io.Discard, Status: io.Discard}),
		fx.Replace(libp2padapter.MemoryOpener(discovery.NewMemory())))
	err := app.Err()
	if err == nil {
		t.Fatal("a 5-character passphrase was accepted")
	}
	if !errors.Is(err, slotdiscovery.ErrWeakPassphrase) || strings.Contains(err.Error(), "zebra") {
		t.Fatalf("error %q: want ErrWeakPassphrase, without the passphrase", err)
	}
}
