package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// relayFlags are the relay command's settings, shared with the demo, which
// runs the same relay in-process.
type relayFlags struct {
	listen         string
	store          string
	basePath       string
	maxPackets     int
	writeRate      float64
	writeBurst     int
	readRate       float64
	readBurst      int
	futureMargin   time.Duration
	maxConns       int
	maxConnsPerIP  int
	trustedProxies listFlag
	logLevel       string
	logFormat      string
	version        string
	// upstream, when set, is where the relay publishes what it stores and
	// looks up what it lacks (the DHT, with --dht).
	upstream pkarrclient.Backend
	// registry, when set, holds the handler's metrics (and those of
	// whatever else runs beside it); nil means one of the handler's own.
	registry *prometheus.Registry
}

func runRelay(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("relay", "[--listen ADDR] [--store PATH|memory] [--dht [--bootstrap HOST:PORT]...] "+
		"[--circuit-listen MULTIADDR... [--circuit-key FILE]] [flags]", e.stdout)
	var f relayFlags
	fs.StringVar(&f.listen, "listen", "127.0.0.1:6881", "address to listen on")
	fs.StringVar(&f.store, "store", "memory", `packet store: a bbolt file PATH (created if missing), or "memory"`)
	fs.StringVar(&f.basePath, "base-path", "/", `URL path the API lives under, e.g. "/pkarr"`)
	fs.IntVar(&f.maxPackets, "max-packets", pkarrrelay.DefaultCapacity, "packets kept; the least recently used are evicted beyond it")
	fs.Float64Var(&f.writeRate, "write-rate", float64(pkarrrelay.DefaultWriteRate), "PUTs per second per client IP (0: unlimited)")
	fs.IntVar(&f.writeBurst, "write-burst", pkarrrelay.DefaultWriteBurst, "PUT burst per client IP")
	fs.Float64Var(&f.readRate, "read-rate", float64(pkarrrelay.DefaultReadRate), "GETs per second per client IP (0: unlimited)")
	fs.IntVar(&f.readBurst, "read-burst", pkarrrelay.DefaultReadBurst, "GET burst per client IP")
	fs.DurationVar(&f.futureMargin, "future-margin", pkarrrelay.DefaultFutureMargin, "reject packets stamped further than this in the future")
	fs.IntVar(&f.maxConns, "max-conns", 0, fmt.Sprintf("connections held open in all (0: %d, or 3/4 of the open-file limit if lower)", pkarrrelay.DefaultMaxConns))
	fs.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", 0, fmt.Sprintf("connections from one client IP, IPv6 by /64 (0: %d, or 1/4 of --max-conns if lower)", pkarrrelay.DefaultMaxConnsPerIP))
	fs.Var(&f.trustedProxies, "trusted-proxy", "`CIDR` of a reverse proxy whose X-Forwarded-For is believed (repeatable)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", logFormatHelp)
	dhtf := addDHTFlags(fs, "back the relay with the Mainline DHT: publish every stored packet there and look up "+
		"packets the store lacks (a passive DHT client: it asks, it never answers)")
	circuitf := addCircuitFlags(fs)
	f.version = version()
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q", rest[0])
	}
	if err := dhtf.check(fs); err != nil {
		return err
	}
	circuitCfg, err := circuitf.check(fs)
	if err != nil {
		return err
	}
	logger, err := newLogger(e.stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	// One registry for the pkarr relay and the circuit relay, served
	// together at /metrics.
	f.registry = prometheus.NewRegistry()
	var circuitID crypto.PrivKey
	if circuitCfg != nil && circuitCfg.keyFile != "" {
		// Before anything listens: a bad key file costs nothing.
		var created bool
		if circuitID, created, err = circuitKey(circuitCfg.keyFile); err != nil {
			return err
		}
		if created {
			logger.Info("circuit relay key created", "file", circuitCfg.keyFile)
		}
	}
	var dht *mainline.DHT
	if dhtf.on {
		if dht, err = dhtf.open(e, dhtf.listen, logger); err != nil {
			return err
		}
		defer dht.Close() // on early returns; a second Close does nothing
		f.upstream = dht
	}
	srv, store, err := f.build(logger)
	if err != nil {
		return err
	}
	defer store.Close()
	var circuit *circuitRelay
	if circuitCfg != nil {
		if circuit, err = startCircuitRelay(circuitCfg, circuitID, f.registry, f.version); err != nil {
			return err
		}
		defer circuit.Close() // on early returns; a second Close does nothing
		if circuitCfg.keyFile == "" {
			logger.Warn("circuit relay has a new peer ID at each start; give --circuit-key FILE to keep it")
		}
		warnMissingTransport(logger, circuitCfg.listen)
	}
	ln, err := srv.Listen(ctx, f.listen)
	if err != nil {
		return err
	}
	if circuit != nil {
		addrs, err := circuit.Addrs()
		if err != nil {
			ln.Close()
			return fmt.Errorf("circuit relay: %w", err)
		}
		// Before the serving line, so a script that waits for that line
		// has every address.
		for _, a := range addrs {
			fmt.Fprintf(e.stdout, "circuit relay serving %s\n", a)
		}
		// Its settings, not its addresses: that it serves, and where, is
		// said once, on stdout, above.
		logger.Info("circuit relay settings", circuit.logAttrs(circuitCfg)...)
	}
	upstream := ""
	if dht != nil {
		upstream = fmt.Sprintf(", upstream: %s on udp %s", mainline.BackendName, dht.Addr())
	}
	// Printed only once the listener exists, so a script that waits for
	// this line can connect immediately. It is the one place that says
	// the relay serves: the log has the settings only.
	fmt.Fprintf(e.stdout, "relay serving %s (store: %s%s)\n", srv.URL(), f.store, upstream)
	logger.Info("relay settings", "store", f.store, "max_packets", f.maxPackets, "dht", dht != nil)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	if circuit != nil {
		if err := circuit.Close(); err != nil {
			logger.Warn("closing the circuit relay", "err", err)
		}
		logger.Info("circuit relay stopped")
	}
	// Serve has finished the requests in flight and stopped the Handler's
	// upstream lookups; only now may the DHT under them go.
	if dht != nil {
		if err := dht.Close(); err != nil {
			logger.Warn("saving the DHT routing table snapshot failed", "err", err)
		}
	}
	logger.Info("relay stopped")
	return store.Close()
}

// build opens the store and assembles handler and server.
func (f *relayFlags) build(logger *slog.Logger) (*pkarrrelay.Server, pkarrrelay.Store, error) {
	var proxies []netip.Prefix
	for _, p := range f.trustedProxies {
		prefix, err := parsePrefix(p)
		if err != nil {
			return nil, nil, usageError("--trusted-proxy %q: %v", p, err)
		}
		proxies = append(proxies, prefix)
	}
	if f.maxPackets < 1 {
		return nil, nil, usageError("--max-packets must be at least 1")
	}
	if f.maxConns < 0 || f.maxConnsPerIP < 0 {
		return nil, nil, usageError("--max-conns and --max-conns-per-ip must not be negative")
	}
	var store pkarrrelay.Store
	if f.store == "memory" {
		store = pkarrrelay.NewMemoryStore(f.maxPackets)
	} else {
		bolt, err := pkarrrelay.OpenBoltStore(f.store,
			pkarrrelay.BoltMaxPackets(f.maxPackets), pkarrrelay.BoltLogger(logger))
		if errors.Is(err, pkarrrelay.ErrDamaged) {
			return nil, nil, fmt.Errorf("%w; move the file aside (the relay then starts empty and clients republish) or restore a backup", err)
		}
		if err != nil {
			return nil, nil, err
		}
		store = bolt
	}
	opts := []pkarrrelay.Option{
		pkarrrelay.WithBasePath(f.basePath),
		pkarrrelay.WithWriteRateLimit(limit(f.writeRate), f.writeBurst),
		pkarrrelay.WithReadRateLimit(limit(f.readRate), f.readBurst),
		pkarrrelay.WithFutureMargin(f.futureMargin),
		pkarrrelay.WithTrustedProxies(proxies...),
		pkarrrelay.WithLogger(logger),
		pkarrrelay.WithVersion(f.version),
	}
	if f.upstream != nil {
		opts = append(opts, pkarrrelay.WithUpstream(f.upstream))
	}
	if f.registry != nil {
		opts = append(opts, pkarrrelay.WithRegisterer(f.registry))
	}
	h, err := pkarrrelay.NewHandler(store, opts...)
	if err == nil {
		var srv *pkarrrelay.Server
		if srv, err = pkarrrelay.NewServer(h, pkarrrelay.ServerMaxConns(f.maxConns, f.maxConnsPerIP)); err == nil {
			return srv, store, nil
		}
	}
	store.Close()
	return nil, nil, usageError("%v", err)
}

// version is the module version the binary was built from, or "dev".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// limit maps the command line's "0 means unlimited" to rate.Inf.
func limit(perSecond float64) rate.Limit {
	if perSecond <= 0 {
		return rate.Inf
	}
	return rate.Limit(perSecond)
}

// parsePrefix accepts a CIDR or a bare address (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// logFormatHelp is --log-format's usage, the same for every command that
// logs.
const logFormatHelp = "`FORMAT` of the log on standard error: text (key=value pairs) or json (one object per line, for log collectors)"

// newLogger is the log of --log-level and --log-format, on w (standard
// error). A value it does not know is a usage error, quoted so that it
// stays on one line.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("--log-format %q: want text or json", format)
}
