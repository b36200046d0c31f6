package pkarrclient

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/anacrolix/dht/v2/krpc"
	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent/bencode"
)

// bridgeLogger forwards the library's warnings and errors to slog. Its
// debug output (a line per datagram) is dropped before formatting.
func bridgeLogger(l *slog.Logger) alog.Logger {
	al := alog.NewLogger("dht")
	al.SetHandlers(slogHandler{l})
	return al.WithFilterLevel(alog.Warning)
}

type slogHandler struct{ l *slog.Logger }

func (h slogHandler) Handle(r alog.Record) {
	level := slog.LevelWarn
	if !r.Level.LessThan(alog.Error) {
		level = slog.LevelError
	}
	h.l.Log(context.Background(), level, "anacrolix dht: "+r.Msg.String())
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory and a rename, so readers see the old file or the new one.
func writeFileAtomic(path string, b []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err = f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// filterConn drops datagrams before the library sees them when they are
// not a KRPC dictionary or carry a query name BEP5 and BEP44 do not define.
// The library logs every undecodable datagram through its process-wide
// logger and keeps a counter per query name it receives, forever, so
// strangers could otherwise fill the log and the memory of a process.
type filterConn struct {
	net.PacketConn
}

func (c filterConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || acceptDatagram(b[:n]) {
			return n, addr, err
		}
	}
}

func acceptDatagram(b []byte) bool {
	if len(b) < 2 || b[0] != 'd' {
		return false
	}
	// The full message, as the library will decode it: a head that
	// decodes with a broken body would still reach its logger.
	var h krpc.Msg
	if err := bencode.Unmarshal(b, &h); err != nil {
		var trailing bencode.ErrUnusedTrailingBytes
		if !errors.As(err, &trailing) {
			return false
		}
	}
	switch h.Y {
	case "r", "e":
		return true
	case "q":
		switch h.Q {
		case "ping", "find_node", "get_peers", "announce_peer", "get", "put":
			return true
		}
	}
	return false
}
