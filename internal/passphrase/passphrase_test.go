package passphrase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// secret is distinctive enough that finding it in an error can only mean
// the passphrase leaked.
const secret = "zebra-quartz-FLAMINGO-7731-nocturne"

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("the passphrase appears in the error: %v", err)
	}
}

func TestReadFileTrimsOneNewline(t *testing.T) {
	for content, want := range map[string]string{
		secret:                 secret,
		secret + "\n":          secret,
		secret + "\r\n":        secret,
		secret + "\n\n":        secret + "\n",
		" " + secret:           " " + secret,
		secret + " \n":         secret + " ",
		secret + "\r":          secret + "\r",
		"two words\ttab\r\n":   "two words\ttab",
		"\n":                   "",
		"":                     "",
		"line one\nline two\n": "line one\nline two",
	} {
		got, err := ReadFile(writeFile(t, content, 0o600))
		if err != nil || string(got) != want {
			t.Errorf("file %q: got %q, %v; want %q", content, got, err, want)
		}
	}
}

func TestReadFileRefusals(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits")
	}
	open := writeFile(t, secret+"\n", 0o644)
	big := writeFile(t, strings.Repeat(secret+"\n", MaxFileSize/len(secret)+1), 0o600)
	dir := t.TempDir()
	for _, tc := range []struct {
		path   string
		reason error
		want   string
	}{
		{open, ErrFileTooOpen, "passphrase file " + open + " is accessible by other users (mode 0644; want 0600: chmod 600 " + open + ")"},
		{big, ErrFileTooLarge, "passphrase file " + big + " is larger than 65536 bytes: not a passphrase"},
		{dir, ErrNotRegular, "passphrase file " + dir + " is a directory, not a regular file: use a file of mode 0600, or $" + EnvVar},
		{dir + "/missing", fs.ErrNotExist, "passphrase file: stat " + dir + "/missing: no such file or directory"},
	} {
		got, err := ReadFile(tc.path)
		var fe *FileError
		if got != nil || !errors.As(err, &fe) || fe.Path != tc.path || err.Error() != tc.want {
			t.Errorf("%s: got %q, %v; want the *FileError %q", tc.path, got, err, tc.want)
		}
		if tc.reason != nil && !errors.Is(err, tc.reason) {
			t.Errorf("%s: %v is not %v", tc.path, err, tc.reason)
		}
		assertNoSecret(t, err)
	}
	// Group access alone is too open as well.
	if _, err := ReadFile(writeFile(t, secret, 0o640)); !errors.Is(err, ErrFileTooOpen) {
		t.Errorf("mode 0640: %v", err)
	}
	if _, err := ReadFile(writeFile(t, secret, 0o400)); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

// TestReadFileRefusesPipe: an anonymous pipe (--passphrase-file
// <(pass show group)) is not a regular file and is refused, unread: the
// same open would block forever on a named pipe nobody writes to.
func TestReadFileRefusesPipe(t *testing.T) {
	if _, err := os.Stat("/dev/fd/0"); err != nil {
		t.Skipf("no /dev/fd: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fmt.Fprintln(w, secret)
	w.Close() // so a ReadFile that wrongly reads the pipe ends rather than hangs
	path := fmt.Sprintf("/dev/fd/%d", r.Fd())
	got, err := ReadFile(path)
	if got != nil || !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "is a named pipe (FIFO), not a regular file") {
		t.Fatalf("from a pipe: %q, %v; want it refused as a named pipe", got, err)
	}
	assertNoSecret(t, err)
}

func TestReadSources(t *testing.T) {
	file := writeFile(t, "from the file\n", 0o600)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k != EnvVar {
				t.Errorf("looked up $%s", k)
			}
			return v
		}
	}
	var nilFile *os.File
	regular, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	for _, tc := range []struct {
		name string
		src  Source
		want string // "" for ErrNoSource
	}{
		{"file over env", Source{File: file, Getenv: env("from env")}, "from the file"},
		{"env", Source{Getenv: env("from env"), Stdin: strings.NewReader("a line\n")}, "from env"},
		{"empty env is unset", Source{Getenv: env(""), Stdin: strings.NewReader("a line\n")}, ""},
		{"no env", Source{}, ""},
		{"nil *os.File", Source{Getenv: env(""), Stdin: nilFile}, ""},
		{"a regular file is no terminal", Source{Getenv: env(""), Stdin: regular}, ""},
	} {
		var prompt bytes.Buffer
		tc.src.Stderr = &prompt
		got, err := Read(context.Background(), tc.src)
		switch {
		case tc.want == "" && !errors.Is(err, ErrNoSource):
			t.Errorf("%s: got %q, %v; want ErrNoSource", tc.name, got, err)
		case tc.want != "" && (err != nil || string(got) != tc.want):
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if prompt.Len() != 0 {
			t.Errorf("%s: prompted %q without a terminal", tc.name, prompt.String())
		}
	}
	// A file that fails is the answer: no falling back to the environment.
	if _, err := Read(context.Background(), Source{File: file + ".missing", Getenv: env("from env")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if want := "no passphrase: set $PHRASEMEET_PASSPHRASE, give --passphrase-file PATH, or run on a terminal to be prompted"; ErrNoSource.Error() != want {
		t.Errorf("ErrNoSource says %q", ErrNoSource)
	}
}

func TestRefuseFlags(t *testing.T) {
	for _, a := range []string{"--passphrase", "-passphrase=x", "--pass", "--password=x", "--secret", "--phrase=x", "--pass-phrase"} {
		if RefuseFlags([]string{"--relay", "x", a}) == nil {
			t.Errorf("%q not refused", a)
		}
	}
	for _, args := range [][]string{{"--passphrase-file", "f"}, {"--secret-file=f"}, {"--", "--passphrase"}, {"--json"}, nil} {
		if err := RefuseFlags(args); err != nil {
			t.Errorf("%q refused: %v", args, err)
		}
	}
	err := RefuseFlags([]string{"--password=" + secret})
	var ae *ArgError
	if !errors.As(err, &ae) || ae.Flag != "password" {
		t.Fatalf("--password=...: %#v", err)
	}
	want := "there is no --password flag: a passphrase on the command line is visible to other users and kept in shell history; " +
		"use $PHRASEMEET_PASSPHRASE, --passphrase-file or the prompt"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
	assertNoSecret(t, err)
}

func TestRefuseArgs(t *testing.T) {
	if err := RefuseArgs(nil); err != nil {
		t.Errorf("no arguments: %v", err)
	}
	err := RefuseArgs([]string{secret, "more"})
	var ae *ArgError
	if !errors.As(err, &ae) || ae.Flag != "" || ae.Args != 2 {
		t.Fatalf("two arguments: %#v", err)
	}
	want := "takes no arguments, got 2 (a passphrase is never taken from the command line: use $PHRASEMEET_PASSPHRASE, --passphrase-file or the prompt)"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
	assertNoSecret(t, err)
}
