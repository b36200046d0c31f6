package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	circuitclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery/internal/proctest"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// These tests run `phrasemeet relay --circuit-listen` as a process and
// use it from real libp2p hosts on loopback.

// circuitLine is how the relay announces each circuit relay address.
var circuitLine = regexp.MustCompile(`^circuit relay serving (\S+)$`)

// circuitRelayProc is a running `phrasemeet relay` with a circuit relay.
type circuitRelayProc struct {
	*proctest.Proc
	url   string
	id    peer.ID
	addrs []ma.Multiaddr // as printed: full, /p2p/<id> included
}

// addr returns the printed address of the transport proto (ma.P_TCP or
// ma.P_QUIC_V1).
func (r *circuitRelayProc) addr(t *testing.T, proto int) ma.Multiaddr {
	t.Helper()
	for _, a := range r.addrs {
		if _, err := a.ValueForProtocol(proto); err == nil {
			return a
		}
	}
	t.Fatalf("the relay printed no address with protocol %d: %v", proto, r.addrs)
	return nil
}

// startRelayProc starts a relay with a circuit relay on loopback TCP
// and QUIC, waits for its serving line, and parses the circuit lines
// printed before it.
func startRelayProc(t *testing.T, extra ...string) *circuitRelayProc {
	t.Helper()
	args := append([]string{"relay", "--listen", "127.0.0.1:0", "--store", "memory",
		"--write-rate", "0", "--read-rate", "0",
		"--circuit-listen", "/ip4/127.0.0.1/tcp/0", "--circuit-listen", "/ip4/127.0.0.1/udp/0/quic-v1"}, extra...)
	p := startProc(t, nil, args...)
	r := &circuitRelayProc{Proc: p, url: p.WaitLine(proctest.Stdout, servingLine, readyTimeout)[1]}
	for _, l := range p.Lines(proctest.Stdout) {
		m := circuitLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		a, err := ma.NewMultiaddr(m[1])
		if err != nil {
			t.Fatalf("circuit relay line %q: %v", l, err)
		}
		id, err := peer.IDFromP2PAddr(a)
		if err != nil {
			t.Fatalf("circuit relay line %q lacks /p2p/<ID>: %v", l, err)
		}
		if r.id != "" && id != r.id {
			t.Fatalf("circuit relay lines name two peer IDs: %s and %s", r.id, id)
		}
		r.id = id
		r.addrs = append(r.addrs, a)
	}
	if len(r.addrs) == 0 {
		t.Fatalf("the relay printed no circuit relay address before its serving line:\n%s", p.Output())
	}
	return r
}

// newClientHost starts a libp2p host that uses circuit relays. It listens
// on no address of its own, as if behind a NAT: another host can reach it
// only through a relay, never around it.
func newClientHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.NoListenAddrs,
		libp2p.EnableRelay(), // after NoListenAddrs, which turns it off
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

const echoProto = "/phrasemeet-test/echo/1"

// serveEcho makes h echo what arrives on echoProto, over relayed
// connections too.
func serveEcho(h host.Host) {
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
}

// reserve makes a reservation for h on the relay at addr.
func reserve(t *testing.T, h host.Host, addr ma.Multiaddr) *circuitclient.Reservation {
	t.Helper()
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatalf("connecting to the relay at %s: %v", addr, err)
	}
	rsvp, err := circuitclient.Reserve(ctx, h, *info)
	if err != nil {
		t.Fatalf("reservation on %s: %v", addr, err)
	}
	return rsvp
}

// dialThrough connects from to target through the relay at relayAddr and
// opens an echo stream on the relayed connection.
func dialThrough(t *testing.T, from host.Host, relayAddr ma.Multiaddr, target peer.ID) network.Stream {
	t.Helper()
	s := dialCircuit(t, from, relayAddr, target)
	if !s.Conn().Stat().Limited {
		t.Errorf("the connection to %s is not limited: did it go around the relay? remote %s", target, s.Conn().RemoteMultiaddr())
	}
	return s
}

// dialCircuit is dialThrough without the check that the relay limits the
// connection.
func dialCircuit(t *testing.T, from host.Host, relayAddr ma.Multiaddr, target peer.ID) network.Stream {
	t.Helper()
	circuit, err := ma.NewMultiaddr(relayAddr.String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := from.Connect(ctx, peer.AddrInfo{ID: target, Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("dialing %s through %s: %v", target, circuit, err)
	}
	s, err := from.NewStream(network.WithAllowLimitedConn(ctx, "test"), target, echoProto)
	if err != nil {
		t.Fatalf("stream to %s through the relay: %v", target, err)
	}
	if _, err := s.Conn().RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err != nil {
		t.Errorf("the connection to %s has remote address %s, not a circuit", target, s.Conn().RemoteMultiaddr())
	}
	return s
}

// echo sends msg on s and reads it back; it returns what came back and
// the first error.
func echo(s network.Stream, msg []byte) ([]byte, error) {
	s.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(msg)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(s)
	if err == nil {
		err = <-werr
	}
	return got, err
}

// peerIDOfKeyFile derives the libp2p peer ID of a keygen key file.
func peerIDOfKeyFile(t *testing.T, path string) peer.ID {
	t.Helper()
	sk, err := pkarrclient.LoadSecretKey(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Destroy()
	pub, err := crypto.UnmarshalEd25519PublicKey(ed25519.NewKeyFromSeed(sk.Seed()).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCircuitRelayProcess: `phrasemeet relay --circuit-listen` on TCP
// and QUIC prints each address with /p2p/<ID> before its serving line;
// the ID is that of the --circuit-key file it creates (mode 0600); a host
// reserves a slot over QUIC, another reaches it through the circuit over
// TCP and exchanges more than go-libp2p's default limit of 128 KiB; the
// relay answers AutoNAT; the pkarr relay beside it keeps serving; SIGTERM
// stops both, and the reserved host sees its connection go.
func TestCircuitRelayProcess(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "circuit.key")
	relay := startRelayProc(t, "--circuit-key", keyFile, "--log-level", "info")

	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("--circuit-key file not created: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("--circuit-key file has mode %04o, want 0600", st.Mode().Perm())
	}
	if want := peerIDOfKeyFile(t, keyFile); relay.id != want {
		t.Errorf("relay peer ID %s, want %s, the ID of the key file", relay.id, want)
	}
	if len(relay.addrs) != 2 {
		t.Errorf("the relay printed %d circuit addresses, want 2 (TCP and QUIC): %v", len(relay.addrs), relay.addrs)
	}
	for _, a := range relay.addrs {
		if !strings.HasSuffix(a.String(), "/p2p/"+relay.id.String()) {
			t.Errorf("printed address %s does not end in /p2p/%s", a, relay.id)
		}
	}

	a, b := newClientHost(t), newClientHost(t)
	serveEcho(a)
	start := time.Now()
	rsvp := reserve(t, a, relay.addr(t, ma.P_QUIC_V1))
	t.Logf("reservation in %s (connection included): expires %s, limits %s / %d bytes",
		time.Since(start).Round(time.Millisecond), rsvp.Expiration.Format(time.RFC3339), rsvp.LimitDuration, rsvp.LimitData)
	if rsvp.LimitDuration != time.Hour || rsvp.LimitData != 1<<20 {
		t.Errorf("reservation limits %s / %d bytes, want the documented defaults 1h / 1 MiB", rsvp.LimitDuration, rsvp.LimitData)
	}

	start = time.Now()
	s := dialThrough(t, b, relay.addr(t, ma.P_TCP), a.ID())
	dialed := time.Since(start)
	msg := bytes.Repeat([]byte("phrasemeet "), 256<<10/11) // beyond go-libp2p's default 128 KiB
	got, err := echo(s, msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes through the circuit: %d bytes back, %v", len(msg), len(got), err)
	}
	t.Logf("relayed connection and stream in %s; %d bytes echoed in %s", dialed.Round(time.Millisecond),
		len(msg), (time.Since(start) - dialed).Round(time.Millisecond))

	// AutoNAT v1: the relay answers a dial-back request. It refuses to
	// dial loopback addresses, and says so: that is an answer.
	err = autonat.NewAutoNATClient(b, nil, nil).DialBack(context.Background(), relay.id)
	if !autonat.IsDialRefused(err) {
		t.Errorf("AutoNAT dial-back request to the relay: %v, want a refusal of loopback addresses", err)
	}
	protos, err := b.Peerstore().GetProtocols(relay.id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(protos, "/libp2p/autonat/2/dial-request") {
		t.Errorf("the relay does not serve AutoNAT v2: %v", protos)
	}

	// The pkarr relay beside it.
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := pkarrclient.NewBuilder().TXT("_x", 300, "beside a circuit relay").Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, relay.url+"/"+sk.PublicKey().String(), bytes.NewReader(pkt.RelayPayload()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT to the pkarr relay: %d", resp.StatusCode)
	}
	resp, err = http.Get(relay.url + "/" + sk.PublicKey().String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, pkt.RelayPayload()) {
		t.Fatalf("GET from the pkarr relay: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, err = http.Get(relay.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("libp2p_relaysvc_status 1")) {
		t.Errorf("/metrics lacks the circuit relay's status")
	}

	gone := make(chan struct{})
	a.Network().Notify(&network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == relay.id && a.Network().Connectedness(relay.id) != network.Connected {
			select {
			case <-gone:
			default:
				close(gone)
			}
		}
	}})
	if _, err := relay.Stop(syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("relay exit after SIGTERM: %v\n%s", err, relay.Output())
	}
	for _, want := range []string{`msg="circuit relay stopped"`, `msg="relay stopped"`} {
		if !strings.Contains(relay.Text(proctest.Stderr), want) {
			t.Errorf("relay's log lacks %s:\n%s", want, relay.Text(proctest.Stderr))
		}
	}
	select {
	case <-gone:
	case <-time.After(30 * time.Second):
		t.Errorf("the reserved host is still connected to the stopped relay")
	}
	if _, err := http.Get(relay.url + "/"); err == nil {
		t.Errorf("the pkarr relay still answers after SIGTERM")
	}
}

// TestCircuitRelayKeepsPeerID: a relay restarted with the same
// --circuit-key has the same peer ID, and a key made by `phrasemeet
// keygen` serves as one. --public-cidr puts the relay's addresses in
// the ranges it names into reservations, which otherwise carry only
// public addresses.
func TestCircuitRelayKeepsPeerID(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "relay.key")
	if code, _, stderr := cli(t, nil, "keygen", "--out", keyFile); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	want := peerIDOfKeyFile(t, keyFile)
	h := newClientHost(t)

	first := startRelayProc(t, "--circuit-key", keyFile, "--log-level", "warn")
	if first.id != want {
		t.Fatalf("first run: peer ID %s, want %s (the key file's)", first.id, want)
	}
	if rsvp := reserve(t, h, first.addr(t, ma.P_TCP)); len(rsvp.Addrs) != 0 {
		t.Errorf("reservation on loopback carries addresses without --public-cidr: %v", rsvp.Addrs)
	}
	if _, err := first.Stop(syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("first run's exit: %v\n%s", err, first.Output())
	}

	second := startRelayProc(t, "--circuit-key", keyFile, "--log-level", "warn", "--public-cidr", "127.0.0.0/8",
		"--circuit-max-reservations", "1")
	if second.id != want {
		t.Fatalf("second run: peer ID %s, want %s as before", second.id, want)
	}
	h.Network().ClosePeer(want) // the old connection's address is dead
	rsvp := reserve(t, h, second.addr(t, ma.P_TCP))
	if len(rsvp.Addrs) == 0 {
		t.Errorf("reservation with --public-cidr 127.0.0.0/8 carries no relay address")
	}
	for _, a := range rsvp.Addrs {
		if !strings.HasPrefix(a.String(), "/ip4/127.") {
			t.Errorf("reservation address %s is outside --public-cidr", a)
		}
	}
	if err := tryReserve(newClientHost(t), second.addr(t, ma.P_TCP)); !strings.Contains(fmt.Sprint(err), "RESERVATION_REFUSED") {
		t.Errorf("a second reservation on a relay with --circuit-max-reservations 1: %v, want RESERVATION_REFUSED", err)
	}
}

// tryReserve asks the relay at addr for a reservation for h.
func tryReserve(h host.Host, addr ma.Multiaddr) error {
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = circuitclient.Reserve(ctx, h, *info)
	return err
}

// TestCircuitRelayCountFlags: --circuit-max-per-ip, --circuit-max-per-peer
// and --circuit-reservation-ttl reach the relay.
func TestCircuitRelayCountFlags(t *testing.T) {
	t.Parallel()
	relay := startRelayProc(t, "--circuit-max-reservations", "2", "--circuit-max-per-ip", "1",
		"--circuit-max-per-peer", "1", "--circuit-reservation-ttl", "5m", "--log-level", "warn")
	a, b, c := newClientHost(t), newClientHost(t), newClientHost(t)
	serveEcho(a)
	start := time.Now()
	rsvp := reserve(t, a, relay.addr(t, ma.P_TCP))
	if left := rsvp.Expiration.Sub(start); left < 4*time.Minute || left > 6*time.Minute {
		t.Errorf("reservation lasts %s, want about 5m", left)
	}
	// All hosts here dial from 127.0.0.1: the second reservation is one
	// too many for the address, not for the relay (2).
	if err := tryReserve(c, relay.addr(t, ma.P_TCP)); !strings.Contains(fmt.Sprint(err), "RESERVATION_REFUSED") {
		t.Errorf("a second reservation from 127.0.0.1 with --circuit-max-per-ip 1: %v, want RESERVATION_REFUSED", err)
	}

	s := dialThrough(t, b, relay.addr(t, ma.P_TCP), a.ID())
	defer s.Close()
	circuit, err := ma.NewMultiaddr(relay.addr(t, ma.P_TCP).String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{circuit}})
	if !strings.Contains(fmt.Sprint(err), "RESOURCE_LIMIT_EXCEEDED") {
		t.Errorf("a second circuit to a peer with --circuit-max-per-peer 1: %v, want RESOURCE_LIMIT_EXCEEDED", err)
	}
}

// TestCircuitRelayLimitFlags: --circuit-data and --circuit-duration reach
// the relay: a stream beyond the data limit is cut, and an idle relayed
// connection is closed once its time is up.
// TestCircuitRelayUnlimited: with --circuit-data 0 --circuit-duration 0
// the relay sets no per-connection limit, so a relayed connection is not
// Limited and applications that skip Limited connections (pubsub) use it.
func TestCircuitRelayUnlimited(t *testing.T) {
	t.Parallel()
	relay := startRelayProc(t, "--circuit-data", "0", "--circuit-duration", "0", "--log-level", "warn")
	a, b := newClientHost(t), newClientHost(t)
	serveEcho(a)
	rsvp := reserve(t, a, relay.addr(t, ma.P_TCP))
	if rsvp.LimitData != 0 || rsvp.LimitDuration != 0 {
		t.Errorf("reservation limits %s / %d bytes, want none", rsvp.LimitDuration, rsvp.LimitData)
	}
	s := dialCircuit(t, b, relay.addr(t, ma.P_TCP), a.ID())
	if s.Conn().Stat().Limited {
		t.Errorf("a connection through a relay without per-connection limits is Limited")
	}
	msg := bytes.Repeat([]byte("x"), 2<<20)
	if got, err := echo(s, msg); err != nil || len(got) != len(msg) {
		t.Errorf("2 MiB through an unlimited relay: %d bytes back, %v", len(got), err)
	}
}

func TestCircuitRelayLimitFlags(t *testing.T) {
	t.Parallel()
	relay := startRelayProc(t, "--circuit-data", "4KiB", "--circuit-duration", "3s", "--log-level", "warn")
	a, b := newClientHost(t), newClientHost(t)
	serveEcho(a)
	rsvp := reserve(t, a, relay.addr(t, ma.P_TCP))
	if rsvp.LimitData != 4096 || rsvp.LimitDuration != 3*time.Second {
		t.Errorf("reservation limits %s / %d bytes, want 3s / 4096", rsvp.LimitDuration, rsvp.LimitData)
	}

	s := dialThrough(t, b, relay.addr(t, ma.P_TCP), a.ID())
	msg := bytes.Repeat([]byte("x"), 64<<10)
	if got, err := echo(s, msg); err == nil && len(got) == len(msg) {
		t.Errorf("64 KiB went through a relay limited to 4 KiB per direction")
	}

	s = dialThrough(t, b, relay.addr(t, ma.P_TCP), a.ID())
	closed := make(chan error, 1)
	go func() {
		s.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, err := s.Read(make([]byte, 1))
		closed <- err
	}()
	select {
	case err := <-closed:
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("an idle relayed stream outlived --circuit-duration 3s by a minute")
		}
	case <-time.After(90 * time.Second):
		t.Errorf("an idle relayed stream outlived --circuit-duration 3s")
	}
}
