package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// relayHelp is --relay's usage. A flag's usage names the values it takes
// in backquotes, which the flag package shows in help as the placeholder
// ("--relay URL") instead of its generic "value".
const relayHelp = "relay base `URL` (repeatable or comma-separated; default $PHRASEMEET_RELAYS, else the public relays; " +
	`"none": no relay, the DHT alone)`

// listFlag is a repeatable flag; each use may also hold a comma-separated
// list.
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

// repeatedFlag is a repeatable flag whose values may contain commas.
type repeatedFlag []string

func (r *repeatedFlag) String() string { return strings.Join(*r, " ") }

func (r *repeatedFlag) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// prints its help, when asked for with -h or --help, to w.
func newFlagSet(name, usage string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintln(w, strings.TrimRight("usage: phrasemeet "+name+" "+usage, " "))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nflags:\n")
			printDefaults(fs)
		}
	}
	return fs
}

// flagLine is the start of a flag's line in flag.PrintDefaults ("  -name"),
// whose documented layout puts each usage text on lines of its own that
// begin with a tab.
var flagLine = regexp.MustCompile(`(?m)^  -`)

// printDefaults prints fs's flags as flag.PrintDefaults does, but with the
// two dashes users type (and gh, restic and age show): the flag package
// accepts both, and one dash reads as a cluster of short options.
func printDefaults(fs *flag.FlagSet) {
	w := fs.Output()
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(w)
	io.WriteString(w, flagLine.ReplaceAllString(b.String(), "  --"))
}

// parseFlags parses args, allowing flags after positional arguments
// ("resolve KEY --relay URL"), which the flag package alone does not.
// The flag package's own messages are silenced: a mistake comes back as
// an errUsage error for run to print, and the help is printed only when
// asked for (flag.ErrHelp), not after every mistake.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	help, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	defer func() { fs.Usage = help; fs.SetOutput(out) }()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				help()
				return nil, err
			}
			return nil, usageError("%s (see phrasemeet %s -h)", flagProblem(err.Error()), fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// invalidFlagValue is the flag package's message for a value a flag's
// type refuses (strconv's, or its Set method's, error last).
var invalidFlagValue = regexp.MustCompile(`(?s)^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]+): (.*)$`)

// flagProblem rewords a flag package error the way help lists flags, with
// two dashes, and on one line: the flag package prints "-name" whichever
// way it was typed, and the name and value come from the user.
func flagProblem(msg string) string {
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag " + flagName(name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "flag " + flagName(name) + " needs a value"
	}
	if arg, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return "bad flag syntax " + strconv.Quote(arg)
	}
	if m := invalidFlagValue.FindStringSubmatch(msg); m != nil {
		return noControls(fmt.Sprintf("invalid value %s for %s: %s", m[1], flagName(m[2]), m[3]))
	}
	return noControls(msg)
}

// noControls keeps a message on one line whatever a flag's Set method put
// in its error: control characters (newlines, carriage returns, escapes)
// become spaces.
func noControls(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// flagName is "--name" (or "-x" for a one-letter name, as short options
// are written), quoted when the name holds anything but letters, digits,
// '-', '_' and '.', so that what a user typed cannot break the error line.
func flagName(name string) string {
	dashes := "--"
	if len(name) == 1 {
		dashes = "-"
	}
	if name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return dashes + name
	}
	return strconv.Quote(dashes + name)
}

// relayURLs returns the relays named on the command line, else those in
// PHRASEMEET_RELAYS, else the public relays. "public" expands to the public
// relays wherever it appears; "none", alone, means no relay at all (with
// --dht: the DHT alone).
func relayURLs(flagged []string, e env) ([]string, error) {
	urls, source := flagged, "--relay"
	if len(urls) == 0 {
		var l listFlag
		l.Set(e.getenv("PHRASEMEET_RELAYS"))
		urls, source = l, "PHRASEMEET_RELAYS"
	}
	if len(urls) == 0 {
		urls = []string{"public"}
	}
	var out []string
	for _, u := range urls {
		switch u {
		case "none":
			if len(urls) > 1 {
				return nil, usageError("%s: %q cannot be combined with relays", source, u)
			}
			return nil, nil
		case "public":
			out = append(out, pkarrclient.DefaultRelays()...)
		default:
			out = append(out, u)
		}
	}
	return out, nil
}

// newRelays builds a relay backend for each URL.
func newRelays(urls []string) ([]pkarrclient.Backend, error) {
	backends := make([]pkarrclient.Backend, 0, len(urls))
	for _, u := range urls {
		r, err := pkarrclient.NewRelay(u)
		if err != nil {
			// NewRelay's error names the URL without its password;
			// quoting u here would print it.
			return nil, usageError("%v", err)
		}
		backends = append(backends, r)
	}
	return backends, nil
}

// newClient builds a pkarr client over the given relay URLs.
func newClient(urls []string) (*pkarrclient.Client, error) {
	backends, err := newRelays(urls)
	if err != nil {
		return nil, err
	}
	return pkarrclient.NewClient(backends)
}
