// Package passphrase gets a group's passphrase for the project's commands
// (cmd/phrasemeet, examples/chat) from the places a user may keep it,
// first match wins:
//
//  1. a file (--passphrase-file PATH): its content less one trailing
//     newline, so `echo words > file` works. Only a regular file is read
//     (a named pipe would block the command for good, deaf to Ctrl-C), and
//     only if other users cannot read it and it is not larger than
//     MaxFileSize;
//  2. the environment variable EnvVar, as is;
//  3. a prompt on the terminal, read without echo, when standard input is
//     one.
//
// Never the command line. argv is visible to every user of the machine
// (ps, /proc/PID/cmdline) for as long as the process runs, and shells keep
// it in their history files; a passphrase there is no longer a secret of
// the group. So there is no --passphrase flag: RefuseFlags and RefuseArgs
// refuse what looks like an attempt to give one, and say so without
// repeating it.
//
// For the same reason no error of this package holds the passphrase, or
// any byte read from a passphrase file: errors name the file and say what
// is wrong, never what it holds.
package passphrase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"runtime"
	"sync"

	"golang.org/x/term"

	"github.com/phrasemeet/discovery/internal/regularfile"
)

// EnvVar names the environment variable that holds the passphrase.
const EnvVar = "PHRASEMEET_PASSPHRASE"

// FileFlag is the name, without dashes, of the flag the commands give a
// passphrase file with; this package's messages point to it.
const FileFlag = "passphrase-file"

// MaxFileSize bounds what ReadFile reads: a passphrase is a line, so a
// larger file is the wrong file.
const MaxFileSize = 64 << 10

// ErrNoSource is returned by Read when no source has a passphrase: no
// file, EnvVar unset or empty, and standard input not a terminal.
var ErrNoSource = errors.New("no passphrase: set $" + EnvVar + ", give --" + FileFlag + " PATH, or run on a terminal to be prompted")

// ErrInterrupted is returned by Prompt (and Read) when the context ends
// while the user is being asked, as it does when SIGINT or SIGTERM arrives
// (signal.NotifyContext): "interrupted" tells a user more than the
// context's "context canceled".
var ErrInterrupted = errors.New("interrupted")

// ErrFileTooOpen, ErrFileTooLarge and ErrNotRegular are the reasons
// ReadFile refuses a file it could read; a *FileError carries them.
var (
	ErrFileTooOpen  = errors.New("passphrase file is accessible by other users")
	ErrFileTooLarge = errors.New("passphrase file is too large")
	// ErrNotRegular: a named pipe, a device, a directory. Reading one
	// could block forever, in an open no signal interrupts.
	ErrNotRegular = regularfile.ErrNotRegular
)

// FileError reports a passphrase file that could not be read or was
// refused. It names the file and never holds any of its content.
type FileError struct {
	// Path is the file as it was given, so the message points at it.
	Path string
	// Perm is the file's permission bits, for ErrFileTooOpen.
	Perm fs.FileMode
	// Err is ErrFileTooOpen, ErrFileTooLarge, a
	// *regularfile.NotRegularError (errors.Is ErrNotRegular), or the
	// error of opening, stating or reading the file (an *fs.PathError).
	Err error
}

// Error names the file and says what is wrong with it.
func (e *FileError) Error() string {
	switch e.Err {
	case ErrFileTooOpen:
		return fmt.Sprintf("passphrase file %s is accessible by other users (mode %04o; want 0600: chmod 600 %s)", e.Path, e.Perm, e.Path)
	case ErrFileTooLarge:
		return fmt.Sprintf("passphrase file %s is larger than %d bytes: not a passphrase", e.Path, MaxFileSize)
	}
	if nr, ok := errors.AsType[*regularfile.NotRegularError](e.Err); ok {
		return fmt.Sprintf("passphrase file %s is %s, not a regular file: use a file of mode 0600, or $%s",
			e.Path, regularfile.Kind(nr.Mode), EnvVar)
	}
	return "passphrase file: " + e.Err.Error() // an *fs.PathError names the file
}

// Unwrap returns the reason, so errors.Is(err, ErrFileTooOpen) or
// errors.Is(err, fs.ErrNotExist) work.
func (e *FileError) Unwrap() error { return e.Err }

// Source says where Read may look. Its zero value looks nowhere: a source
// left empty (no File, a nil Getenv, a nil Stdin) is not consulted.
type Source struct {
	// File is the passphrase file's path; "" for none.
	File string
	// Getenv looks up EnvVar, as os.Getenv does.
	Getenv func(string) string
	// Stdin is prompted on when it is an *os.File on a terminal; any
	// other reader (a pipe, a nil *os.File) is never read.
	Stdin io.Reader
	// Stderr receives the prompt; nil discards it.
	Stderr io.Writer
}

// Read returns the passphrase from the first source that has one: the
// file, else EnvVar, else a prompt on a terminal; else ErrNoSource. The
// caller clears the slice when done. An empty EnvVar counts as unset (the
// environment cannot tell the two apart), so it leads to the prompt or to
// ErrNoSource, never to an empty passphrase; an empty file or an empty
// line at the prompt is returned as an empty passphrase, for the caller to
// refuse.
func Read(ctx context.Context, s Source) ([]byte, error) {
	if s.File != "" {
		return ReadFile(s.File)
	}
	if s.Getenv != nil {
		if v := s.Getenv(EnvVar); v != "" {
			return []byte(v), nil
		}
	}
	f, ok := s.Stdin.(*os.File)
	if !ok || f == nil || !term.IsTerminal(int(f.Fd())) {
		// Reading a line from a pipe would work, but a passphrase typed
		// into something that is not a terminal may have been echoed;
		// ask for an explicit source instead.
		return nil, ErrNoSource
	}
	w := s.Stderr
	if w == nil {
		w = io.Discard
	}
	return Prompt(ctx, f, w)
}

// ReadFile reads a passphrase file: its content less one trailing "\n" or
// "\r\n", as an editor or echo leaves; other white space belongs to the
// passphrase. Anything but a regular file (a symbolic link to one is
// followed) is refused without blocking: a named pipe, --passphrase-file
// <(pass show group) included, since one nobody writes to would hang the
// command in an open that ignores signals; a password manager's output
// goes through EnvVar instead. A file with any permission for group or
// others is refused (not on Windows, which has no such bits), as is a
// file larger than MaxFileSize. Every error is a *FileError.
func ReadFile(path string) ([]byte, error) {
	f, st, err := regularfile.Open(path)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	defer f.Close()
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, &FileError{Path: path, Perm: perm, Err: ErrFileTooOpen}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		// The error is the syscall's (an I/O error); the bytes read so
		// far are cleared, never quoted.
		clear(b)
		return nil, &FileError{Path: path, Err: err}
	}
	if len(b) > MaxFileSize {
		clear(b)
		return nil, &FileError{Path: path, Err: ErrFileTooLarge}
	}
	if t, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b, _ = bytes.CutSuffix(t, []byte("\r"))
	}
	return b, nil
}

// reads counts the terminal reads Prompt has started and not seen end,
// abandoned ones included; tests wait for them before closing a terminal.
var reads sync.WaitGroup

// Prompt writes "passphrase: " to w and reads a line from the terminal
// tty with echo off. If ctx ends first (Ctrl-C is a signal, as the
// terminal keeps ISIG), it restores the terminal's state, which the
// abandoned read would otherwise leave without echo, and returns
// ErrInterrupted. The abandoned read stays blocked on the terminal and
// takes the next line typed there: a caller is expected to exit.
func Prompt(ctx context.Context, tty *os.File, w io.Writer) ([]byte, error) {
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	fmt.Fprint(w, "passphrase: ")
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	reads.Add(1)
	go func() {
		defer reads.Done()
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(w) // the Enter the user typed was not echoed
		if r.err != nil {
			return nil, fmt.Errorf("reading the passphrase: %w", r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		term.Restore(fd, state)
		fmt.Fprintln(w)
		return nil, ErrInterrupted
	}
}

// ArgError reports an attempt to give the passphrase on the command line.
// It holds a flag's name or a count, never a value.
type ArgError struct {
	// Flag is the passphrase-like flag's name without dashes
	// ("passphrase", "password", ...), or "" for positional arguments.
	Flag string
	// Args is how many positional arguments were given, when Flag is "".
	Args int
}

// Error says why the command line is refused and where the passphrase
// goes instead.
func (e *ArgError) Error() string {
	if e.Flag != "" {
		return fmt.Sprintf("there is no --%s flag: a passphrase on the command line is visible to other users and kept in shell history; "+
			"use $%s, --%s or the prompt", e.Flag, EnvVar, FileFlag)
	}
	return fmt.Sprintf("takes no arguments, got %d (a passphrase is never taken from the command line: use $%s, --%s or the prompt)",
		e.Args, EnvVar, FileFlag)
}

// flagLike matches what a user trying to pass the passphrase as a flag
// would type: -passphrase, --passphrase, either with =VALUE, and the
// common abbreviations and misspellings of it.
var flagLike = regexp.MustCompile(`^--?(passphrase|pass-phrase|password|pass|secret|phrase)(=|$)`)

// RefuseFlags returns an *ArgError if args, up to a "--", try to give the
// passphrase as a flag (--passphrase=..., -password ...). A command runs
// it before parsing its flags, whose "flag provided but not defined"
// would be safe but unhelpful. Flags that merely start alike
// (--passphrase-file, --secret-file) pass.
func RefuseFlags(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		if m := flagLike.FindStringSubmatch(a); m != nil {
			return &ArgError{Flag: m[1]}
		}
	}
	return nil
}

// RefuseArgs returns an *ArgError if a command that takes no positional
// arguments got some. It counts them rather than quoting them: a user may
// have typed the passphrase as one.
func RefuseArgs(positional []string) error {
	if len(positional) == 0 {
		return nil
	}
	return &ArgError{Args: len(positional)}
}
