// Package regularfile opens files that must be regular files, such as a
// passphrase or secret key file, without ever blocking on something else.
//
// Opening a named pipe to read blocks until a writer comes, in a system
// call that neither SIGINT nor SIGTERM interrupts for a Go program: a
// FIFO given as a secret file hung the command for good. A device may
// block too, or do something on open. Open refuses anything but a regular
// file before opening it, opens without blocking (so a FIFO swapped in
// after that check cannot block either), and checks the opened file
// again.
package regularfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNotRegular is what errors.Is finds in the error of Open for a path
// that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// NotRegularError reports a path that is not a regular file. It names the
// path and its kind, and never holds anything read from it.
type NotRegularError struct {
	// Path is the path as it was given, so the message points at it.
	Path string
	// Mode is the file's mode as stat reported it; its type bits say
	// what it is.
	Mode fs.FileMode
}

// Error says what the path is instead of a regular file.
func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file", e.Path, Kind(e.Mode))
}

// Is makes errors.Is(err, ErrNotRegular) true.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// Kind names a file type for a user: "a named pipe (FIFO)", "a directory".
func Kind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	default:
		return "a special file"
	}
}

// Open opens path for reading if it is a regular file (a symbolic link to
// one is followed), and returns the file and what fstat says of it, for
// the caller's own checks (permissions, size). Anything else is refused
// with a *NotRegularError before it is opened; a file that changed into
// something else between that check and the open is refused too, and
// opening it cannot block. Other errors are those of os.Stat and os.Open
// (an *fs.PathError naming the path).
func Open(path string) (*os.File, fs.FileInfo, error) { return open(path, nil) }

// open is Open; between, if not nil, runs between the check and the open,
// where tests swap the file.
func open(path string, between func()) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, &NotRegularError{Path: path, Mode: st.Mode()}
	}
	if between != nil {
		between()
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &NotRegularError{Path: path, Mode: st.Mode()}
	}
	return f, st, nil
}
