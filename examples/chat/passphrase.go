package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"

	"golang.org/x/term"
)

// The passphrase comes from, first match wins (as in cmd/phrasemeet):
//
//  1. --passphrase-file PATH: the file less one trailing newline; a
//     regular file other users can read is refused.
//  2. $PHRASEMEET_PASSPHRASE.
//  3. A prompt on the terminal, without echo.
//
// Never from the command line, which every user of the machine can read
// (ps, /proc) and which shells keep in their history; and never in an
// error or a status line: errors say what is wrong with it, not what it
// is.

const passphraseEnv = "PHRASEMEET_PASSPHRASE"

// maxPassphraseFile bounds what --passphrase-file reads: a passphrase is a
// line, anything larger is the wrong file.
const maxPassphraseFile = 64 << 10

// passphraseArg matches what someone giving the passphrase as a flag would
// type.
var passphraseArg = regexp.MustCompile(`^--?(passphrase|pass-phrase|password|pass|secret|phrase)(=|$)`)

// refusePassphraseArg fails on an attempt to give the passphrase as a
// flag, without quoting the value.
func refusePassphraseArg(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		if m := passphraseArg.FindStringSubmatch(a); m != nil {
			return usageErrorf("there is no --%s flag: a passphrase on the command line is visible to other users and kept in shell history; use $%s, --passphrase-file or the prompt",
				m[1], passphraseEnv)
		}
	}
	return nil
}

// readPassphrase returns the passphrase from the first source that has
// one. The caller wipes it.
func readPassphrase(ctx context.Context, file string, getenv func(string) string, stdin *os.File, stderr io.Writer) ([]byte, error) {
	if file != "" {
		return readPassphraseFile(file)
	}
	if v := getenv(passphraseEnv); v != "" {
		return []byte(v), nil
	}
	if stdin == nil || !term.IsTerminal(int(stdin.Fd())) {
		return nil, usageErrorf("no passphrase: set $%s, give --passphrase-file PATH, or run on a terminal to be prompted", passphraseEnv)
	}
	return promptPassphrase(ctx, stdin, stderr)
}

func readPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("passphrase file %s is accessible by other users (mode %04o; want 0600: chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if len(b) > maxPassphraseFile {
		clear(b)
		return nil, fmt.Errorf("passphrase file %s is larger than %d bytes: not a passphrase", path, maxPassphraseFile)
	}
	if t, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b, _ = bytes.CutSuffix(t, []byte("\r"))
	}
	return b, nil
}

// errInterrupted ends a prompt cut short by a signal.
var errInterrupted = errors.New("interrupted")

// promptPassphrase asks on the terminal with echo off. A signal while
// waiting restores the echo the abandoned read would leave off.
func promptPassphrase(ctx context.Context, tty *os.File, stderr io.Writer) ([]byte, error) {
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	fmt.Fprint(stderr, "passphrase: ")
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
		fmt.Fprintln(stderr)
		if r.err != nil {
			return nil, fmt.Errorf("reading the passphrase: %w", r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		term.Restore(fd, state)
		fmt.Fprintln(stderr)
		return nil, errInterrupted
	}
}
