package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"golang.org/x/time/rate"
	"math"
	"strings"

	"github.com/phrasemeet/discovery/pkarrclient/mainline"
)

// maxSourceLimit bounds --source-limit; above it, 0 (unlimited) says it.
const maxSourceLimit = 1_000_000

// runDHTNode runs a full Mainline DHT node: it answers queries, stores
// BEP44 items (pkarr packets among them) for others and keeps its routing
// table fresh, until SIGINT or SIGTERM.
//
// Once its socket is open it prints one line on standard output,
//
//	dht-node listening on <addr>
//
// which scripts (and the tests) wait for before pointing --bootstrap at
// it. What follows is logged on standard error.
func runDHTNode(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("dht-node", "[--listen ADDR] [--bootstrap HOST:PORT,...|none] [--nodes-file PATH] [--capacity N] [--refresh-interval D] [--source-limit N]\n\n"+
		"Runs a full Mainline DHT node that answers queries and stores records for others. Once it serves it prints\n"+
		"one line, \"dht-node listening on ADDR\"; it stops on SIGINT or SIGTERM. Give the first node of a private\n"+
		"network --bootstrap none and the others --bootstrap with its address.", e.stdout)
	listen := fs.String("listen", ":6881", "UDP address to listen on; other nodes must be able to reach it")
	var f dhtFlags
	f.on = true
	fs.Var(&f.bootstrap, "bootstrap", bootstrapHelp)
	fs.StringVar(&f.nodesFile, "nodes-file", "",
		"keep a snapshot of the routing table in this file, read at start and written periodically and at exit; "+
			"a file that is not such a snapshot (earlier versions' format included) stops the command and is left untouched")
	refresh := fs.Duration("refresh-interval", mainline.DefaultRefreshInterval,
		"how often to refresh the routing table (asking its nodes, which makes them ones this node hands out) and save the snapshot; 0: never")
	capacity := fs.Int("capacity", mainline.DefaultStoreCapacity, "items stored for others; the least recently used are evicted beyond it")
	sourceLimit := fs.Float64("source-limit", mainline.DefaultSourceLimit,
		"queries per second answered per source (an IPv4 address or an IPv6 /64), with bursts of twice that; "+
			"the rest are dropped, so one flooding source cannot starve the others; 0: unlimited")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", logFormatHelp)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q", rest[0])
	}
	if *capacity < 1 {
		return usageError("--capacity must be at least 1")
	}
	if *refresh < 0 {
		return usageError("--refresh-interval must not be negative")
	}
	if !(*sourceLimit >= 0 && *sourceLimit <= maxSourceLimit) { // NaN too
		return usageError("--source-limit must be a number of queries per second from 0 (unlimited) to %d", maxSourceLimit)
	}
	// A burst of twice the rate, and at least one query.
	sourceBurst := max(int(math.Ceil(2**sourceLimit)), 1)
	if *sourceLimit == 0 {
		sourceBurst = 0
	}
	logger, err := newLogger(e.stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	addrs, err := bootstrapAddrs(f.bootstrap, e)
	if err != nil {
		return err
	}
	d, err := f.open(e, *listen, logger, mainline.WithServing(*capacity), mainline.WithRefreshInterval(*refresh),
		mainline.WithSourceRateLimit(rate.Limit(*sourceLimit), sourceBurst))
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(e.stdout, "dht-node listening on %s\n", d.Addr())
	id := d.ID()
	bootstrapText := strings.Join(addrs, ",")
	if len(addrs) == 0 {
		bootstrapText = "none"
	}
	// Where it listens is said once, on stdout above; the log has the rest.
	logger.Info("dht-node settings", "id", hex.EncodeToString(id[:]),
		"bootstrap", bootstrapText, "capacity", *capacity, "source_limit", *sourceLimit, "table", d.RoutingTableSize())

	// mainline.New bootstraps once in the background; a second round, logged,
	// tells the operator (and scripts) that the node has joined, and helps
	// small networks converge.
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		if len(addrs) == 0 && d.RoutingTableSize() == 0 {
			join := d.AddrPort()
			hint := join.String()
			if join.Addr().IsUnspecified() {
				// [::]:6881 is where it listens, not where others reach it.
				hint = fmt.Sprintf("THIS-HOST:%d", join.Port())
			}
			logger.Info("dht-node starting alone: no bootstrap node; other nodes join with --bootstrap " + hint)
			return
		}
		n, err := d.Bootstrap(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			logger.Warn("dht-node bootstrap failed; serving anyway, retrying at the next refresh", "err", err)
		default:
			logger.Info("dht-node bootstrapped", "answered", n, "table", d.RoutingTableSize())
		}
	}()

	<-ctx.Done()
	logger.Info("dht-node stopping", "table", d.RoutingTableSize())
	err = d.Close() // also ends the bootstrap round, if it still runs
	<-joined
	if err != nil {
		return fmt.Errorf("saving the routing table snapshot: %w", err)
	}
	logger.Info("dht-node stopped")
	return nil
}
