package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
)

// The DHT settings every command that touches the Mainline DHT shares:
// publish, resolve and relay with --dht, and dht-node.
//
// How --dht combines with relays: it adds the DHT as one more backend next
// to the relays, which still come from --relay, else PHRASEMEET_RELAYS, else
// the public relays. "--relay none" drops the relays, leaving the DHT alone.

// bootstrapEnv names the environment variable that replaces the public
// routers for every DHT use, as PHRASEMEET_RELAYS does for relays.
const bootstrapEnv = "PHRASEMEET_BOOTSTRAP"

const bootstrapHelp = "DHT node `HOST:PORT` to join through (repeatable or comma-separated; default $" + bootstrapEnv +
	`, else the public routers; "public" stands for them, "none" for no node at all)`

// dhtFlags are the DHT settings of one command line.
type dhtFlags struct {
	on        bool // --dht; dht-node is always on
	bootstrap listFlag
	listen    string
	nodesFile string
}

// addDHTFlags registers --dht, --bootstrap, --dht-listen and
// --dht-nodes-file; dhtHelp describes what --dht does for the command.
func addDHTFlags(fs *flag.FlagSet, dhtHelp string) *dhtFlags {
	f := &dhtFlags{}
	fs.BoolVar(&f.on, "dht", false, dhtHelp)
	fs.Var(&f.bootstrap, "bootstrap", bootstrapHelp+" (with --dht)")
	fs.StringVar(&f.listen, "dht-listen", ":0", "UDP address of the DHT client (with --dht)")
	fs.StringVar(&f.nodesFile, "dht-nodes-file", "",
		"keep a snapshot of the DHT routing table in this file, read at start and written after joining and at exit; "+
			"a file that is not such a snapshot stops the command and is left untouched (with --dht)")
	return f
}

// check refuses DHT settings given without --dht: silently ignoring them
// would let a user believe the DHT was used.
func (f *dhtFlags) check(fs *flag.FlagSet) error {
	if f.on {
		return nil
	}
	var stray string
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "bootstrap", "dht-listen", "dht-nodes-file":
			if stray == "" {
				stray = fl.Name
			}
		}
	})
	if stray != "" {
		return usageError("--%s needs --dht", stray)
	}
	return nil
}

// bootstrapAddrs returns the bootstrap nodes named on the command line,
// else those in PHRASEMEET_BOOTSTRAP, else the public routers. "public"
// expands to the public routers wherever it appears; "none", alone, means
// no bootstrap node (the first node of a private network, or one that
// starts from its snapshot file).
func bootstrapAddrs(flagged []string, e env) ([]string, error) {
	addrs, source := flagged, "--bootstrap"
	if len(addrs) == 0 {
		var l listFlag
		l.Set(e.getenv(bootstrapEnv))
		addrs, source = l, bootstrapEnv
	}
	if len(addrs) == 0 {
		addrs = []string{"public"}
	}
	var out []string
	for _, a := range addrs {
		switch a {
		case "none":
			if len(addrs) > 1 {
				return nil, usageError("%s: %q cannot be combined with addresses", source, a)
			}
			return nil, nil
		case "public":
			out = append(out, mainline.DefaultBootstrap()...)
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return nil, usageError("%s %q: want HOST:PORT", source, a)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, usageError("%s %q: port must be a number from 1 to 65535", source, a)
		}
		out = append(out, a)
	}
	return out, nil
}

// open starts a DHT node listening on listen with the bootstrap nodes and
// snapshot file of f; extra options (WithServing for dht-node) come last. A
// nil logger keeps the library quiet.
func (f *dhtFlags) open(e env, listen string, logger *slog.Logger, extra ...mainline.Option) (*mainline.DHT, error) {
	addrs, err := bootstrapAddrs(f.bootstrap, e)
	if err != nil {
		return nil, err
	}
	conn, err := e.listenPacket("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("DHT: %w", err)
	}
	opts := []mainline.Option{
		mainline.WithConn(conn),
		mainline.WithBootstrap(addrs...),
	}
	if f.nodesFile != "" {
		opts = append(opts, mainline.WithNodesFile(f.nodesFile))
	}
	if e.resolver != nil {
		opts = append(opts, mainline.WithResolver(e.resolver))
	}
	if logger != nil {
		opts = append(opts, mainline.WithLogger(logger))
	}
	d, err := mainline.New(append(opts, extra...)...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return d, nil
}

// clientBackends returns what publish and resolve talk to: the relays
// (none with --relay none) and, with --dht, a passive DHT client, last.
// The DHT, when there is one, is returned too so the caller can close it.
func clientBackends(e env, relays []string, f *dhtFlags) ([]pkarrclient.Backend, *mainline.DHT, error) {
	urls, err := relayURLs(relays, e)
	if err != nil {
		return nil, nil, err
	}
	if len(urls) == 0 && !f.on {
		return nil, nil, usageError(`relays are "none" and --dht is not given: nothing to talk to`)
	}
	backends, err := newRelays(urls)
	if err != nil {
		return nil, nil, err
	}
	if !f.on {
		return backends, nil, nil
	}
	d, err := f.open(e, f.listen, nil)
	if err != nil {
		return nil, nil, err
	}
	return append(backends, d), d, nil
}

// closeDHT closes a client's DHT. Its only possible failure is saving the
// routing table snapshot, which does not undo what the command did, so it
// is a warning, not an exit status.
func closeDHT(e env, command string, d *mainline.DHT) {
	if d == nil {
		return
	}
	if err := d.Close(); err != nil {
		fmt.Fprintf(e.stderr, "phrasemeet %s: warning: %s\n", command, oneLine(err.Error()))
	}
}
