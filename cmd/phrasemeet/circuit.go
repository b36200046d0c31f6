package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/internal/regularfile"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// The circuit relay's default limits, chosen for chats. go-libp2p's own
// (2 minutes or 128 KiB per relayed connection) cut a conversation that
// stays relayed (a peer behind a symmetric NAT) every two minutes; chat
// lines are small and arrive seldom, so a relayed connection here may
// last as long as a reservation (an hour) and carry 1 MiB each way,
// several thousand lines. What one reserved peer can make the relay
// carry stays bounded: circuits per peer × data × 2 per hour.
const (
	defaultCircuitDuration     = time.Hour
	defaultCircuitData         = 1 << 20
	defaultCircuitReservations = 128
	defaultCircuitPerIP        = 8
	defaultCircuitPerPeer      = 16
	defaultReservationTTL      = time.Hour

	// minReservationTTL: go-libp2p's AutoRelay refreshes a reservation
	// each minute once it is within two minutes of expiring, so a shorter
	// lifetime would lapse between refreshes.
	minReservationTTL = 2 * time.Minute
)

// circuitFlags are the relay command's circuit relay settings, as given.
type circuitFlags struct {
	listen         listFlag
	keyFile        string
	publicCIDRs    listFlag
	duration       time.Duration
	data           string
	reservations   int
	perIP          int
	perPeer        int
	reservationTTL time.Duration
}

// addCircuitFlags defines the circuit relay flags on fs.
func addCircuitFlags(fs *flag.FlagSet) *circuitFlags {
	c := &circuitFlags{}
	fs.Var(&c.listen, "circuit-listen", "also run a libp2p circuit relay v2 listening on this `MULTIADDR`: /ip4|ip6/ADDR/tcp/PORT or "+
		"/ip4|ip6/ADDR/udp/PORT/quic-v1 (repeatable; give both, peers punch holes over the transport they reach the relay with)")
	fs.StringVar(&c.keyFile, "circuit-key", "", "the circuit relay's key file, which fixes its peer ID across restarts "+
		"(the format keygen writes; created with mode 0600 if missing; default: a new peer ID at each start)")
	fs.Var(&c.publicCIDRs, "public-cidr", "treat addresses in this `CIDR` range as public: the circuit relay hands its own addresses "+
		"in it to the peers that reserve, and AutoNAT and hole punching count them public (repeatable; for a campus or "+
		"VPN whose private range is its internet)")
	fs.DurationVar(&c.duration, "circuit-duration", defaultCircuitDuration, "a relayed connection is closed after this long "+
		"(at least 1s; 0 with --circuit-data 0: no limit, see below)")
	fs.StringVar(&c.data, "circuit-data", formatByteSize(defaultCircuitData),
		"a relayed connection is closed after carrying this much in either direction (bytes, or with KiB, MiB, GiB; "+
			"0 with --circuit-duration 0: no per-connection limit, so that peers can use relayed connections like direct "+
			"ones: libp2p marks a connection through a limited relay Limited, and pubsub does not use Limited connections)")
	fs.IntVar(&c.reservations, "circuit-max-reservations", defaultCircuitReservations, "peers holding a reservation at once")
	fs.IntVar(&c.perIP, "circuit-max-per-ip", defaultCircuitPerIP, "reservations from one IP address")
	fs.IntVar(&c.perPeer, "circuit-max-per-peer", defaultCircuitPerPeer, "relayed connections to or from one peer at once")
	fs.DurationVar(&c.reservationTTL, "circuit-reservation-ttl", defaultReservationTTL,
		fmt.Sprintf("a reservation lasts this long unless refreshed (at least %s)", minReservationTTL))
	return c
}

// circuitConfig is a checked circuitFlags.
type circuitConfig struct {
	listen    []ma.Multiaddr
	keyFile   string
	public    []netip.Prefix
	resources relay.Resources
}

// check validates the flags. It returns nil when no --circuit-listen was
// given, and a usage error if other circuit flags were.
func (c *circuitFlags) check(fs *flag.FlagSet) (*circuitConfig, error) {
	if len(c.listen) == 0 {
		var stray string
		fs.Visit(func(f *flag.Flag) {
			if stray == "" && (strings.HasPrefix(f.Name, "circuit-") || f.Name == "public-cidr") {
				stray = f.Name
			}
		})
		if stray != "" {
			return nil, usageError("--%s needs --circuit-listen", stray)
		}
		return nil, nil
	}
	cfg := &circuitConfig{keyFile: c.keyFile}
	for _, s := range c.listen {
		a, err := parseCircuitListen(s)
		if err != nil {
			return nil, usageError("--circuit-listen %q: %v", s, err)
		}
		cfg.listen = append(cfg.listen, a)
	}
	for _, s := range c.publicCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, usageError("--public-cidr %q: want a CIDR such as 10.0.0.0/8", s)
		}
		cfg.public = append(cfg.public, p.Masked())
	}
	data, err := parseByteSize(c.data)
	if err != nil {
		return nil, usageError("--circuit-data %q: %v", c.data, err)
	}
	unlimited := c.duration == 0 && data == 0
	switch {
	case unlimited:
	case c.duration == 0 || data == 0:
		return nil, usageError("--circuit-duration 0 and --circuit-data 0 go together: no per-connection limit")
	case c.duration < time.Second:
		return nil, usageError("--circuit-duration %s: must be at least 1s", c.duration)
	case c.duration/time.Second > math.MaxUint32:
		// The limit travels to peers as whole seconds in 32 bits.
		return nil, usageError("--circuit-duration %s: must be under 136 years", c.duration)
	case data < 1:
		return nil, usageError("--circuit-data %q: must be at least 1 byte", c.data)
	case c.reservations < 1:
		return nil, usageError("--circuit-max-reservations must be at least 1")
	case c.perIP < 1:
		return nil, usageError("--circuit-max-per-ip must be at least 1")
	case c.perPeer < 1:
		return nil, usageError("--circuit-max-per-peer must be at least 1")
	case c.reservationTTL < minReservationTTL:
		return nil, usageError("--circuit-reservation-ttl %s: must be at least %s", c.reservationTTL, minReservationTTL)
	}
	for _, p := range cfg.public {
		// Refused here, as a usage error, rather than when the host starts.
		if p.Addr().Is6() && !netip.MustParsePrefix("2000::/3").Overlaps(p) {
			return nil, usageError("--public-cidr %s: IPv6 ranges outside 2000::/3 are never public to libp2p", p)
		}
	}
	rc := relay.DefaultResources()
	rc.Limit = &relay.RelayLimit{Duration: c.duration, Data: data}
	if unlimited {
		rc.Limit = nil
	}
	rc.ReservationTTL = c.reservationTTL
	rc.MaxReservations = c.reservations
	rc.MaxReservationsPerIP = c.perIP
	rc.MaxCircuits = c.perPeer
	cfg.resources = rc
	return cfg, nil
}

// parseCircuitListen accepts an address libp2p can listen on with TCP or
// QUIC: an IP address (no DNS name, no peer ID) and a port.
func parseCircuitListen(s string) (ma.Multiaddr, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("not a multiaddr: %v", err)
	}
	var codes []int
	for _, p := range a.Protocols() {
		codes = append(codes, p.Code)
	}
	const want = "want /ip4|ip6/ADDR/tcp/PORT or /ip4|ip6/ADDR/udp/PORT/quic-v1"
	if len(codes) < 2 || (codes[0] != ma.P_IP4 && codes[0] != ma.P_IP6) {
		return nil, errors.New(want)
	}
	switch rest := codes[1:]; {
	case len(rest) == 1 && rest[0] == ma.P_TCP:
	case len(rest) == 2 && rest[0] == ma.P_UDP && rest[1] == ma.P_QUIC_V1:
	default:
		return nil, errors.New(want)
	}
	return a, nil
}

// byteUnits are the units parseByteSize accepts (any case) and
// formatByteSize prints, largest first.
var byteUnits = []struct {
	name     string   // printed by formatByteSize
	suffixes []string // accepted by parseByteSize, lower case
	size     int64
}{
	{"GiB", []string{"gib", "g"}, 1 << 30},
	{"MiB", []string{"mib", "m"}, 1 << 20},
	{"KiB", []string{"kib", "k"}, 1 << 10},
	{"", []string{"b", ""}, 1},
}

// parseByteSize reads a number of bytes: plain, or with a binary unit
// (KiB, MiB, GiB; K, M, G for short; any case; a space between is
// allowed). Decimal units (KB, MB) are refused rather than guessed at.
func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	unit := strings.TrimLeft(t, "-+0123456789")
	n, err := strconv.ParseInt(t[:len(t)-len(unit)], 10, 64)
	if err != nil {
		return 0, errors.New("want a number of bytes, optionally with KiB, MiB or GiB")
	}
	unit = strings.TrimSpace(unit)
	for _, u := range byteUnits {
		if !slices.Contains(u.suffixes, unit) {
			continue
		}
		if n > math.MaxInt64/u.size || n < math.MinInt64/u.size {
			return 0, errors.New("too large")
		}
		return n * u.size, nil
	}
	return 0, errors.New("unknown unit: want KiB, MiB or GiB")
}

// formatByteSize prints n in the largest unit that divides it.
func formatByteSize(n int64) string {
	for _, u := range byteUnits {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return "0"
}

// circuitKey reads the circuit relay's key file, or creates it (mode
// 0600) if it does not exist. The file holds an Ed25519 seed, as keygen
// writes it; the libp2p identity is the key it seeds. Something other
// than a regular file is a usage error; a file others may read, or one
// holding no key, is refused and left as it is.
func circuitKey(path string) (key crypto.PrivKey, created bool, err error) {
	sk, err := pkarrclient.LoadSecretKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		var fresh *pkarrclient.SecretKey
		if fresh, err = pkarrclient.GenerateSecretKey(nil); err != nil {
			return nil, false, fmt.Errorf("--circuit-key: %w", err)
		}
		err = pkarrclient.SaveSecretKey(path, fresh)
		switch {
		case err == nil:
			sk, created = fresh, true
		case errors.Is(err, fs.ErrExist):
			// Another process created it between our read and write.
			fresh.Destroy()
			sk, err = pkarrclient.LoadSecretKey(path)
		default:
			fresh.Destroy()
		}
	}
	var notRegular *regularfile.NotRegularError
	if errors.As(err, &notRegular) {
		return nil, false, usageError("--circuit-key: %v", notRegular)
	}
	if err != nil {
		return nil, false, fmt.Errorf("--circuit-key: %w", err)
	}
	defer sk.Destroy()
	seed := sk.Seed()
	defer clear(seed)
	// The libp2p key keeps this slice as its own: it must not be cleared.
	key, err = crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, false, fmt.Errorf("--circuit-key: %w", err)
	}
	return key, created, nil
}

// circuitRelay is a libp2p host serving circuit relay v2 and AutoNAT.
type circuitRelay struct {
	host  host.Host
	relay *relay.Relay
}

// startCircuitRelay starts the host and its relay service, listening on
// every address of cfg: an address it cannot listen on is an error
// (go-libp2p alone would carry on with the others and only log it).
//
// The host is told it is publicly reachable: a relay that is not is of no
// use, and go-libp2p starts neither its relay service nor its AutoNAT
// service for a host that believes otherwise (AutoNAT's own verdict needs
// other servers and comes late, if ever, on a fresh deployment). The
// relay service is started directly rather than by EnableRelayService,
// which waits for that belief asynchronously: the addresses printed are
// then served.
func startCircuitRelay(cfg *circuitConfig, key crypto.PrivKey, reg prometheus.Registerer, version string) (*circuitRelay, error) {
	// Before the host exists: go-multiaddr's lists are read unlocked.
	if err := connectivity.TreatAsPublic(cfg.public...); err != nil {
		return nil, fmt.Errorf("circuit relay: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.NoListenAddrs,
		// TCP and QUIC only: the transports peers punch holes with, and
		// nothing else to listen on or defend.
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ForceReachabilityPublic(),
		libp2p.EnableNATService(),
		libp2p.EnableAutoNATv2(),
		// This host relays; it never dials through a relay itself.
		libp2p.DisableRelay(),
		libp2p.UserAgent("phrasemeet-relay/" + version),
		libp2p.PrometheusRegisterer(reg),
	}
	if key != nil {
		opts = append(opts, libp2p.Identity(key))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("circuit relay: %w", err)
	}
	for _, a := range cfg.listen {
		if err := h.Network().Listen(a); err != nil {
			h.Close()
			return nil, fmt.Errorf("circuit relay: listening on %s: %w", a, err)
		}
	}
	r, err := relay.New(h,
		relay.WithResources(cfg.resources),
		relay.WithReservationAddressFilter(publicAddrFilter(cfg.public)),
		relay.WithMetricsTracer(relay.NewMetricsTracer(relay.WithRegisterer(reg))),
	)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("circuit relay: %w", err)
	}
	return &circuitRelay{host: h, relay: r}, nil
}

// publicAddrFilter keeps what go-multiaddr calls public, and addresses in
// the given ranges. It decides which of the relay's own addresses go into
// reservations: by default a relay hands out only public ones.
// connectivity.TreatAsPublic, called before the host starts, makes the
// ranges public to go-multiaddr too (for AutoNAT and hole punching); the
// filter keeps working for a relay built without it.
func publicAddrFilter(ranges []netip.Prefix) relay.ReservationAddressFilterFunc {
	return func(a ma.Multiaddr) bool {
		if manet.IsPublicAddr(a) {
			return true
		}
		ip, err := manet.ToIP(a)
		if err != nil {
			return false
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return false
		}
		addr = addr.Unmap()
		for _, p := range ranges {
			if p.Contains(addr) {
				return true
			}
		}
		return false
	}
}

// Addrs returns the addresses the relay listens on, an unspecified
// address (0.0.0.0, ::) expanded to the interfaces' addresses, each with
// /p2p/<ID>: what a peer needs to use it.
func (c *circuitRelay) Addrs() ([]ma.Multiaddr, error) {
	addrs, err := c.host.Network().InterfaceListenAddresses()
	if err != nil {
		return nil, err
	}
	self, err := ma.NewComponent("p2p", c.host.ID().String())
	if err != nil {
		return nil, err
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Encapsulate(self.Multiaddr()))
	}
	return out, nil
}

// logAttrs describe the relay for its start log line.
func (c *circuitRelay) logAttrs(cfg *circuitConfig) []any {
	rc := cfg.resources
	attrs := []any{
		"peer_id", c.host.ID().String(),
		"max_reservations", rc.MaxReservations, "max_per_ip", rc.MaxReservationsPerIP,
		"max_per_peer", rc.MaxCircuits, "reservation_ttl", rc.ReservationTTL,
	}
	if rc.Limit == nil {
		return append(attrs, "circuit_limit", "none")
	}
	return append(attrs, "circuit_duration", rc.Limit.Duration, "circuit_data", rc.Limit.Data)
}

// Close stops the relay service, which ends every circuit, and then the
// host.
func (c *circuitRelay) Close() error {
	c.relay.Close()
	return c.host.Close()
}

// warnMissingTransport logs when the relay listens on only one of TCP
// and QUIC.
func warnMissingTransport(logger *slog.Logger, listen []ma.Multiaddr) {
	var hasTCP, hasQUIC bool
	for _, a := range listen {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			hasQUIC = true
		} else {
			hasTCP = true
		}
	}
	switch {
	case !hasQUIC:
		logger.Warn("circuit relay listens on TCP only: peers punch holes over the transport they reach the relay with, and UDP punching works behind more NATs; add a /udp/PORT/quic-v1 --circuit-listen")
	case !hasTCP:
		logger.Warn("circuit relay listens on QUIC only: peers whose networks block UDP cannot use it; add a /tcp/PORT --circuit-listen")
	}
}
