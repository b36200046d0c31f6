// Command chat is a terminal chat for people who share only a passphrase:
// its peers find each other through pkarr relays (the phrasemeet slot
// rendezvous), mDNS on the LAN, or both, connect with go-libp2p and talk
// over libp2p pubsub (floodsub). It is an example of the phrasemeet libp2p adapter in an
// fx application; see package internal/chat for the wiring.
//
// Usage:
//
//	chat [--nick NAME] [--relay URL|local|public]... [--discovery slots|mdns|both]
//	     [--passphrase-file PATH] [--listen MULTIADDR]... [--loopback] [--quiet]
//	     [--circuit-relay MULTIADDR]... [--no-group-relay]
//	     [--reachability auto|private|public] [--public-cidr CIDR]...
//
// Three chats on one machine, with nothing else running:
//
//	export PHRASEMEET_PASSPHRASE='correct horse battery staple'
//	go run ./examples/chat --relay local --nick alice
//	go run ./examples/chat --relay local --nick bob      # in another terminal
//
// Line mode: each line typed is sent to the room; /peers lists who is
// here, how each was found and how it is connected (direct, relayed
// through which relay, or not connected and why not); /quit leaves, as
// does the end of the input. Others' lines are printed as "<nick>
// text", arrivals and departures as "* ..." lines on standard output;
// discovery and connection status lines ("-- ...") go to standard error.
//
// The passphrase comes from --passphrase-file, else $PHRASEMEET_PASSPHRASE,
// else a prompt without echo; never from the command line. Relays come
// from --relay (repeatable, or comma-separated), else $PHRASEMEET_RELAYS,
// else the public relays. "local" means the relay at 127.0.0.1:6881 (as
// `phrasemeet relay` listens by default), served by this process when none
// answers there; "local:PORT" picks another port; "public" the public
// relays.
//
// Across NATs: a chat whose own addresses are all private (a home
// network) knows at once that it is behind NAT and reserves a slot on a
// circuit relay, publishing the relayed address with its direct ones;
// members reach it through the relay and then try to hole punch to a
// direct connection. Relays come from --circuit-relay (a multiaddr ending
// in /p2p/<peer ID>, as `phrasemeet relay --circuit-listen` prints them;
// repeatable), else $PHRASEMEET_CIRCUIT_RELAYS (comma- or space-separated),
// and from the room itself: a chat that is publicly reachable serves a
// circuit relay for the room's members, and for nobody else, unless
// --no-group-relay. --reachability overrides finding out whether this chat
// is reachable (auto: private at once without a public address, otherwise
// AutoNAT asks the public members). --public-cidr treats a range as
// public, for a network whose "internet" is a private or documentation
// range (repeatable).
//
// For tests only, the hidden flag --test-fast uses a cheap KDF and a slot
// schedule in milliseconds; such a chat meets only other --test-fast
// chats.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/examples/chat/internal/chat"
	"github.com/phrasemeet/discovery/internal/passphrase"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// errUsage marks mistakes in the command line; they exit 2.
var errUsage = errors.New("usage")

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// asUsage marks err as a mistake in the command line.
func asUsage(err error) error {
	return fmt.Errorf("%w: %w", errUsage, err)
}

// listFlag is a repeatable flag; each use may hold a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// hiddenPrefix marks flags left out of the usage text: test settings.
const hiddenPrefix = "test-"

func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) int {
	err := runChat(ctx, args, stdin, stdout, stderr, getenv)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "chat: %s\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	default:
		fmt.Fprintf(stderr, "chat: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
}

func runChat(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) error {
	if err := passphrase.RefuseFlags(args); err != nil {
		return asUsage(err)
	}
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nick := fs.String("nick", "", "your name in the room (default: peer- and the end of your peer ID)")
	var relays, listen listFlag
	fs.Var(&relays, "relay", `pkarr relay URL (repeatable; default $PHRASEMEET_RELAYS, else the public relays); `+
		`"local": the relay at `+chat.DefaultLocalRelay+`, served here if none answers; "local:PORT"; "public"`)
	mode := fs.String("discovery", string(chat.ModeSlots), "how to find the room: slots (pkarr relays), mdns (this LAN only) or both")
	passFile := fs.String(passphrase.FileFlag, "", "read the passphrase from this file (mode 0600; one trailing newline dropped). "+
		"Default $"+passphrase.EnvVar+", else a prompt")
	fs.Var(&listen, "listen", "libp2p listen multiaddr (repeatable; default: every interface, TCP and QUIC)")
	loopback := fs.Bool("loopback", false, "publish loopback addresses too (implied by a local relay)")
	var circuitRelays, publicCIDRs listFlag
	fs.Var(&circuitRelays, "circuit-relay", "circuit relay to use behind NAT: a multiaddr ending in /p2p/<peer ID> "+
		"(repeatable; default $"+circuitRelaysEnv+")")
	noGroupRelay := fs.Bool("no-group-relay", false, "do not serve a circuit relay for the room's members when this chat is reachable from the internet")
	reach := fs.String("reachability", string(connectivity.ReachabilityAuto), "auto, private or public: whether this chat is reachable from the internet "+
		"(auto: private at once if it has no public address, else AutoNAT finds out)")
	fs.Var(&publicCIDRs, "public-cidr", "treat addresses in this range as public, e.g. a campus or VPN 10.0.0.0/8 (repeatable)")
	quiet := fs.Bool("quiet", false, "no discovery and connection status lines")
	testFast := fs.Bool(hiddenPrefix+"fast", false, "tests only: cheap KDF and a fast slot schedule")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chat [--nick NAME] [--relay URL|local|public]... [--discovery slots|mdns|both] [--passphrase-file PATH] [flags]")
		fmt.Fprintln(stderr, "\nflags:")
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.HasPrefix(f.Name, hiddenPrefix) {
				fmt.Fprintf(stderr, "  --%s\n    \t%s\n", f.Name, f.Usage)
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := passphrase.RefuseArgs(fs.Args()); err != nil {
		return asUsage(err) // counts them: someone may have typed the passphrase as one
	}
	m, err := chat.ParseMode(*mode)
	if err != nil {
		return usageErrorf("--%v", err)
	}
	cfg := chat.Config{Mode: m, Listen: listen, Loopback: *loopback, Quiet: *quiet, NoGroupRelay: *noGroupRelay}
	if err := connectivityFlags(&cfg, circuitRelays, publicCIDRs, *reach, getenv); err != nil {
		return err
	}
	if *nick != "" {
		if cfg.Nick, err = chat.CleanNick(*nick); err != nil {
			return usageErrorf("--nick: %v", err)
		}
	}
	if m != chat.ModeMDNS {
		if cfg.Relays, cfg.LocalRelay, err = relayURLs(relays, getenv); err != nil {
			return err
		}
	} else if len(relays) > 0 {
		return usageErrorf("--relay: --discovery mdns asks no relay")
	}
	if *testFast {
		cfg.KDF, cfg.SlotOptions = chat.TestKDF(), chat.TestSchedule()
	}

	pass, err := passphrase.Read(ctx, passphrase.Source{File: *passFile, Getenv: getenv, Stdin: stdin, Stderr: stderr})
	if errors.Is(err, passphrase.ErrNoSource) {
		return asUsage(err)
	}
	if err != nil {
		return err
	}
	defer clear(pass)
	if err := slotdiscovery.CheckPassphrase(pass); err != nil {
		return usageErrorf("passphrase refused: %s", strings.TrimPrefix(strings.TrimPrefix(err.Error(), "slotdiscovery: "), "passphrase too weak: "))
	}
	cfg.Passphrase = pass
	var in io.Reader = stdin
	if stdin == nil {
		in = strings.NewReader("")
	}
	return chat.Run(ctx, cfg, chat.IO{In: in, Out: stdout, Status: stderr})
}

// circuitRelaysEnv holds circuit relays when no --circuit-relay is given.
const circuitRelaysEnv = "PHRASEMEET_CIRCUIT_RELAYS"

// connectivityFlags reads the flags about reaching members behind NATs
// into cfg.
func connectivityFlags(cfg *chat.Config, relays, cidrs []string, reach string, getenv func(string) string) error {
	r, err := connectivity.ParseReachability(reach)
	if err != nil {
		return usageErrorf("--reachability: %s", optionText(err))
	}
	cfg.Reachability = r
	source := "--circuit-relay"
	if len(relays) == 0 {
		relays = strings.FieldsFunc(getenv(circuitRelaysEnv), func(c rune) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' })
		source = "$" + circuitRelaysEnv
	}
	if cfg.CircuitRelays, err = connectivity.ParseCircuitRelays(relays); err != nil {
		return usageErrorf("%s: %s", source, optionText(err))
	}
	for _, s := range cidrs {
		p, err := connectivity.ParsePublicCIDR(s)
		if err != nil {
			return usageErrorf("--public-cidr: %s", optionText(err))
		}
		cfg.PublicCIDRs = append(cfg.PublicCIDRs, p)
	}
	return nil
}

// optionText is an option error without the package's prefix.
func optionText(err error) string {
	return strings.TrimPrefix(err.Error(), connectivity.ErrInvalidOption.Error()+": ")
}

// relayURLs returns the relays to use: the flags', else
// $PHRASEMEET_RELAYS', else the public ones; and the local relay's address
// if "local" or "local:PORT" is among them.
func relayURLs(flagged []string, getenv func(string) string) (urls []string, local string, err error) {
	given, source := flagged, "--relay"
	if len(given) == 0 {
		var l listFlag
		l.Set(getenv("PHRASEMEET_RELAYS"))
		given, source = l, "PHRASEMEET_RELAYS"
	}
	for _, u := range given {
		switch {
		case u == "public":
			urls = append(urls, pkarrclient.DefaultRelays()...)
		case u == "local":
			local = chat.DefaultLocalRelay
		case strings.HasPrefix(u, "local:"):
			port, perr := strconv.ParseUint(strings.TrimPrefix(u, "local:"), 10, 16)
			if perr != nil || port == 0 {
				return nil, "", usageErrorf("%s: %q: want local or local:PORT", source, u)
			}
			local = net.JoinHostPort("127.0.0.1", strconv.FormatUint(port, 10))
		default:
			if _, err := pkarrclient.NewRelay(u); err != nil {
				return nil, "", usageErrorf("%s: %v", source, err) // the error hides a URL's password
			}
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 && local == "" {
		urls = pkarrclient.DefaultRelays()
	}
	return urls, local, nil
}
