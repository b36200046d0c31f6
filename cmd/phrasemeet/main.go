// Command phrasemeet publishes and resolves pkarr records, runs a pkarr
// relay and runs a Mainline DHT node.
//
// Usage:
//
//	phrasemeet <command> [flags]
//
// Commands:
//
//	demo      libp2p hosts meet through a passphrase on an in-process relay, and chat
//	relay     run a pkarr relay server, and a libp2p circuit relay with --circuit-listen
//	keygen    create a secret key file and print its public key
//	publish   sign TXT (or any) records with a secret key file and publish them
//	resolve   fetch, verify and print the records of a public key
//	dht-node  run a full Mainline DHT node that stores records for others
//	slots     show a passphrase group's slots: their keys and who is in them
//	join      announce this peer to a passphrase group and print who is found
//	version   print this binary's module version and VCS revision (also --version)
//	help      print the commands, or with a command its flags (also -h, --help)
//
// slots and join take the passphrase from --passphrase-file PATH, else
// PHRASEMEET_PASSPHRASE, else a prompt without echo on the terminal; never
// from the command line.
//
// Relays are given with --relay URL (repeatable, or comma-separated), or in
// PHRASEMEET_RELAYS; "public" stands for the public pkarr relays and "none"
// for no relay. --dht adds the Mainline DHT to publish, resolve and relay;
// its bootstrap nodes are given with --bootstrap HOST:PORT (repeatable, or
// comma-separated), or in PHRASEMEET_BOOTSTRAP, else the public routers are
// asked; "none" means no bootstrap node. Errors are printed as one line on
// standard error; the exit status is 1 for failures, 2 for a wrong command
// line. resolve exits 3 when the key is not found and 4 when no relay (or
// DHT node) answered.
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
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/phrasemeet/discovery/pkarrclient/mainline"
)

// env is the process environment the commands may read; tests supply their
// own instead of mutating the real one.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// listenUDP opens the DHT's sockets; nil means net.ListenPacket.
	// Tests wrap it to refuse datagrams that would leave loopback.
	listenUDP func(network, addr string) (net.PacketConn, error)
	// resolver looks up DHT bootstrap host names; nil means the system's.
	// Tests pass one that refuses, proving no DNS is asked.
	resolver mainline.HostResolver
	// buildInfo reports how the binary was built; nil means
	// debug.ReadBuildInfo. Tests pass the stamps of other builds.
	buildInfo func() (*debug.BuildInfo, bool)
}

func (e env) listenPacket(network, addr string) (net.PacketConn, error) {
	if e.listenUDP != nil {
		return e.listenUDP(network, addr)
	}
	return net.ListenPacket(network, addr)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "libp2p hosts meet through a passphrase on an in-process relay, and chat", runDemo},
		{"relay", "run a pkarr relay server, and a libp2p circuit relay with --circuit-listen", runRelay},
		{"keygen", "create a secret key file and print its public key", runKeygen},
		{"publish", "sign records with a secret key file and publish them", runPublish},
		{"resolve", "fetch, verify and print the records of a public key", runResolve},
		{"dht-node", "run a full Mainline DHT node that stores records for others", runDHTNode},
		{"slots", "show a passphrase group's slots: their keys and who is in them", runSlots},
		{"join", "announce this peer to a passphrase group and print who is found", runJoin},
		{"version", "print this binary's module version and VCS revision (also --version)", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// errUsage marks errors caused by how the command was called; they exit 2.
var errUsage = errors.New("usage")

// usageError reports a mistake in the command line.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// exitError is a failure with an exit status of its own, for the
// failures a script must tell apart (resolve's "not found" from "no relay
// answered"); other failures exit 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run executes one command line and returns the exit status.
func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		// No command is a mistake, not a question: the usage goes
		// where errors go.
		printUsage(e.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printUsage(e.stdout)
		return 0
	case "--version", "-version":
		args = append([]string{"version"}, args[1:]...)
	case "help":
		// Asked for, help goes to stdout with status 0, as in gh and
		// restic. "help CMD" is "CMD --help", so there is one text per
		// command.
		if len(args) == 1 || args[1] == "help" || args[1] == "-h" || args[1] == "-help" || args[1] == "--help" {
			printUsage(e.stdout)
			return 0
		}
		if len(args) > 2 {
			fmt.Fprintf(e.stderr, "phrasemeet help: want at most one command, got %d\n", len(args)-1)
			return 2
		}
		args = []string{args[1], "--help"}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var coded *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(e.stderr, "phrasemeet %s: %s\n", c.name, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
			return 2
		case errors.As(err, &coded):
			fmt.Fprintf(e.stderr, "phrasemeet %s: %s\n", c.name, oneLine(err.Error()))
			return coded.code
		default:
			fmt.Fprintf(e.stderr, "phrasemeet %s: %s\n", c.name, oneLine(err.Error()))
			return 1
		}
	}
	if len(args[0]) > 1 && strings.HasPrefix(args[0], "-") {
		// The command comes first; phrasemeet itself has no flags but
		// -h and --version.
		name, _, _ := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		fmt.Fprintf(e.stderr, "phrasemeet: unknown flag %s (see phrasemeet -h)\n", flagName(name))
		return 2
	}
	fmt.Fprintf(e.stderr, "phrasemeet: unknown command %q (run phrasemeet help)\n", args[0])
	return 2
}

// oneLine keeps multi-error messages on one line, as the CLI promises.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: phrasemeet <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s  %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s  %s\n", "help", "print this text, or with a command its flags (also -h, --help)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Relays come from --relay URL, else $PHRASEMEET_RELAYS, else the public relays;")
	fmt.Fprintln(w, `"none" means no relay. --dht adds the Mainline DHT (all but demo and dht-node);`)
	fmt.Fprintln(w, "its bootstrap nodes come from --bootstrap HOST:PORT, else $PHRASEMEET_BOOTSTRAP,")
	fmt.Fprintln(w, `else the public routers; "none" means no bootstrap node.`)
	fmt.Fprintln(w, "Example, the DHT alone: phrasemeet resolve --dht --relay none KEY")
	fmt.Fprintln(w, "slots and join read the passphrase from --passphrase-file, else $PHRASEMEET_PASSPHRASE,")
	fmt.Fprintln(w, "else a prompt without echo; never from the command line.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run phrasemeet help <command> (or phrasemeet <command> --help) for a command's flags.")
}
