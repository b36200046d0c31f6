package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"strings"

	"golang.org/x/term"

	"github.com/phrasemeet/discovery/slotdiscovery"
)

// Where the slot commands (slots, join) take the group's passphrase from,
// first match wins:
//
//  1. --passphrase-file PATH: the file's content less one trailing newline,
//     so `echo words > file` works. A regular file that other users can
//     read is refused, as publish refuses such a key file.
//  2. $PHRASEMEET_PASSPHRASE, as is.
//  3. A prompt on the terminal, read without echo, when standard input is
//     one.
//
// Never the command line: argv is visible to every user of the machine
// (ps, /proc) and lands in shell history. There is no --passphrase flag,
// and giving one is refused without repeating its value. For the same
// reason no error, status line or log ever quotes the passphrase: errors
// about it say what is wrong with it (too short, empty), never what it is.

// passphraseEnv names the environment variable that holds the passphrase.
const passphraseEnv = "PHRASEMEET_PASSPHRASE"

// maxPassphraseFile bounds what --passphrase-file reads: a passphrase is a
// line, so anything larger is the wrong file.
const maxPassphraseFile = 64 << 10

// passphraseFlags are the passphrase settings of one command line.
type passphraseFlags struct {
	file string
}

func addPassphraseFlags(fs *flag.FlagSet) *passphraseFlags {
	p := &passphraseFlags{}
	fs.StringVar(&p.file, "passphrase-file", "",
		"read the passphrase from this file (one trailing newline is dropped; mode 0600). "+
			"Default $"+passphraseEnv+", else a prompt when standard input is a terminal")
	return p
}

// passphraseArg matches what a user trying to pass the passphrase on the
// command line would type: -passphrase, --passphrase, either with =VALUE,
// and the common abbreviations and misspellings of it.
var passphraseArg = regexp.MustCompile(`^--?(passphrase|pass-phrase|password|pass|secret|phrase)(=|$)`)

// refusePassphraseArg fails if args try to give the passphrase as a flag.
// It runs before flag parsing, whose "flag provided but not defined" would
// be safe but unhelpful, and it never quotes the argument's value.
func refusePassphraseArg(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		if m := passphraseArg.FindStringSubmatch(a); m != nil {
			return usageError("there is no --%s flag: a passphrase on the command line is visible to other users and kept in shell history; "+
				"use $%s, --passphrase-file or the prompt", m[1], passphraseEnv)
		}
	}
	return nil
}

// noArguments refuses positional arguments without quoting them: a user
// who typed the passphrase as an argument must not see it in an error.
func noArguments(rest []string) error {
	if len(rest) == 0 {
		return nil
	}
	return usageError("takes no arguments, got %d (a passphrase is never taken from the command line: use $%s, --passphrase-file or the prompt)",
		len(rest), passphraseEnv)
}

// errNoPassphrase says where a passphrase could have come from.
var errNoPassphrase = fmt.Errorf("no passphrase: set $%s, give --passphrase-file PATH, or run on a terminal to be prompted", passphraseEnv)

// errInterrupted is what a command reports when SIGINT or SIGTERM ends it
// before it did its work: "interrupted" says more to a user than the
// context's "context canceled".
var errInterrupted = errors.New("interrupted")

// read returns the passphrase from the first source that has one (see
// above). The caller clears it when done. An empty $PHRASEMEET_PASSPHRASE
// counts as unset (env cannot tell the two apart), so it leads to the
// prompt or to errNoPassphrase, never to an empty passphrase.
func (p *passphraseFlags) read(ctx context.Context, e env) ([]byte, error) {
	if p.file != "" {
		return readPassphraseFile(p.file)
	}
	if v := e.getenv(passphraseEnv); v != "" {
		return []byte(v), nil
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		// Reading a line from a pipe would work, but a passphrase typed
		// into something that is not a terminal may have been echoed;
		// ask for an explicit source instead.
		return nil, usageError("%v", errNoPassphrase)
	}
	return promptPassphrase(ctx, e, f)
}

// readPassphraseFile reads a passphrase file. The file's name may appear
// in errors; its content never does.
func readPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err) // *PathError: the name and why, nothing read
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	// Only regular files: a pipe (--passphrase-file <(pass show group))
	// has no meaningful mode, and Windows has no mode bits at all.
	if st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("passphrase file %s is accessible by other users (mode %04o; want 0600: chmod 600 %s)",
			path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	if err != nil {
		// A read error wraps the syscall's (a directory, an I/O error),
		// never the bytes read so far, which are cleared.
		clear(b)
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if len(b) > maxPassphraseFile {
		clear(b)
		return nil, fmt.Errorf("passphrase file %s is larger than %d bytes: not a passphrase", path, maxPassphraseFile)
	}
	return trimNewline(b), nil
}

// trimNewline drops one trailing "\n" or "\r\n", as a text editor or echo
// leaves; other white space belongs to the passphrase.
func trimNewline(b []byte) []byte {
	if b2, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b = b2
		b, _ = bytes.CutSuffix(b, []byte("\r"))
	}
	return b
}

// promptPassphrase asks on the terminal, with echo off. An interrupt
// while waiting (Ctrl-C is a signal, as the terminal keeps ISIG) ends the
// command with errInterrupted and restores the terminal's echo, which the
// abandoned read would otherwise leave off. The abandoned read's goroutine
// stays blocked on the terminal; the process is about to exit.
func promptPassphrase(ctx context.Context, e env, tty *os.File) ([]byte, error) {
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	fmt.Fprint(e.stderr, "passphrase: ")
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(e.stderr) // the Enter the user typed was not echoed
		if r.err != nil {
			return nil, fmt.Errorf("reading the passphrase: %w", r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		term.Restore(fd, state)
		fmt.Fprintln(e.stderr)
		return nil, errInterrupted
	}
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
	fs.Func("namespace", "sub-group under the passphrase's group (default profile): its own slots, no second key derivation", func(s string) error {
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
