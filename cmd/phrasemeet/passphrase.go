package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/phrasemeet/discovery/internal/passphrase"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The slot commands (slots, join) take the group's passphrase from
// --passphrase-file PATH, else $PHRASEMEET_PASSPHRASE, else a prompt
// without echo on the terminal: see internal/passphrase, which also says
// why never from the command line. A passphrase-like flag or a positional
// argument is refused as a usage error that does not repeat it, and no
// error, status line or log ever quotes the passphrase: errors about it
// say what is wrong with it (too short, empty), never what it is.

// passphraseEnv names the environment variable that holds the passphrase.
const passphraseEnv = passphrase.EnvVar

// passphraseFlags are the passphrase settings of one command line.
type passphraseFlags struct {
	file string
}

func addPassphraseFlags(fs *flag.FlagSet) *passphraseFlags {
	p := &passphraseFlags{}
	fs.StringVar(&p.file, passphrase.FileFlag, "",
		"read the passphrase from this file (one trailing newline is dropped; mode 0600). "+
			"Default $"+passphraseEnv+", else a prompt when standard input is a terminal")
	return p
}

// refusePassphraseArg fails if args try to give the passphrase as a flag.
// It runs before flag parsing and never quotes the argument's value.
func refusePassphraseArg(args []string) error {
	return asUsage(passphrase.RefuseFlags(args))
}

// noArguments refuses positional arguments without quoting them: a user
// who typed the passphrase as an argument must not see it in an error.
func noArguments(rest []string) error {
	return asUsage(passphrase.RefuseArgs(rest))
}

// asUsage marks err, if any, as a mistake in the command line (exit 2).
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errUsage, err)
}

// errInterrupted is what a command reports when SIGINT or SIGTERM ends it
// before it did its work: "interrupted" says more to a user than the
// context's "context canceled". It is the prompt's own error, so one
// errors.Is test covers an interrupt at the prompt and after it.
var errInterrupted = passphrase.ErrInterrupted

// read returns the passphrase from the first source that has one. The
// caller clears it when done. Having none is a usage error; an empty
// $PHRASEMEET_PASSPHRASE counts as unset.
func (p *passphraseFlags) read(ctx context.Context, e env) ([]byte, error) {
	pass, err := passphrase.Read(ctx, passphrase.Source{File: p.file, Getenv: e.getenv, Stdin: e.stdin, Stderr: e.stderr})
	if errors.Is(err, passphrase.ErrNoSource) {
		return nil, asUsage(err)
	}
	return pass, err
}

// profile names a slot rendezvous profile.
type profile string

const (
	profileDefault profile = "default"
	profileCanSync profile = "can-sync"
)

func parseProfile(s string) (profile, error) {
	switch p := profile(s); p {
	case profileDefault, profileCanSync:
		return p, nil
	}
	return "", usageError("--profile %q: want default or can-sync", s)
}

// checkPassphrase applies the profile's floor before any work is done:
// the default profile's CheckPassphrase (length and variety, since its
// slot keys are public and guessable offline at the KDF's cost), and for
// can-sync, which accepts anything, only non-empty. The messages say what
// is wrong, never what the passphrase is.
func checkPassphrase(pr profile, pass []byte) error {
	if len(pass) == 0 {
		return usageError("the passphrase is empty")
	}
	if pr == profileCanSync {
		return nil
	}
	if err := slotdiscovery.CheckPassphrase(pass); err != nil {
		msg := strings.TrimPrefix(err.Error(), "slotdiscovery: ")
		if errors.Is(err, slotdiscovery.ErrWeakPassphrase) {
			return usageError("passphrase refused: %s; the slot keys are public, so a weak passphrase can be guessed offline", msg)
		}
		return usageError("passphrase refused: %s", msg)
	}
	return nil
}

// groupFlags are the settings that, with the passphrase, name a default
// profile group: the application salting the KDF and an optional
// namespace under it.
type groupFlags struct {
	profile   string
	app       string
	namespace string
	nsSet     bool // --namespace given, even empty: Namespace("") is a group of its own
}

func addGroupFlags(fs *flag.FlagSet) *groupFlags {
	g := &groupFlags{}
	fs.StringVar(&g.profile, "profile", string(profileDefault), "rendezvous profile: default (sealed entries, Argon2id keys) or can-sync (can-sync's own wire)")
	fs.StringVar(&g.app, "app", slotdiscovery.DefaultApp,
		"application name salting the key derivation (default profile): the same passphrase in another app is another group")
	fs.Func("namespace", "`NAME` of a sub-group under the passphrase's group (default profile): its own slots, no second key derivation", func(s string) error {
		g.namespace, g.nsSet = s, true
		return nil
	})
	return g
}

// check parses --profile and refuses group settings the profile does not
// use, rather than ignoring them: can-sync's keys come from the
// passphrase alone.
func (g *groupFlags) check(fs *flag.FlagSet) (profile, error) {
	pr, err := parseProfile(g.profile)
	if err != nil {
		return "", err
	}
	if pr != profileCanSync {
		if g.app == "" {
			return "", usageError("--app must not be empty")
		}
		return pr, nil
	}
	var stray string
	fs.Visit(func(f *flag.Flag) {
		if (f.Name == "app" || f.Name == "namespace") && stray == "" {
			stray = f.Name
		}
	})
	if stray != "" {
		return "", usageError("--%s is for the default profile: can-sync's slot keys come from the passphrase alone", stray)
	}
	return pr, nil
}

// kdfStatus is the line printed while the KDF runs, which takes a
// noticeable fraction of a second on purpose.
func kdfStatus() string {
	k := slotdiscovery.DefaultKDF()
	return fmt.Sprintf("deriving keys (Argon2id t=%d m=%dMiB p=%d)…", k.Time, k.MemoryKiB/1024, k.Threads)
}

// derive runs the KDF for the default profile and applies the namespace.
// The passphrase has passed checkPassphrase.
func (g *groupFlags) derive(pass []byte) (*slotdiscovery.Group, error) {
	grp, err := slotdiscovery.DeriveGroup(pass, slotdiscovery.WithApp(g.app))
	if err != nil {
		// DeriveGroup's errors never include the passphrase.
		return nil, err
	}
	if g.nsSet {
		grp = grp.Namespace(g.namespace)
	}
	return grp, nil
}
