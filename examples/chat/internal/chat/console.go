package chat

import (
	"fmt"
	"io"
	"sync"
)

// Console is where every component prints, one whole line at a time, so
// lines from the room, the monitor and the UI never interleave
// mid-line.
type Console struct {
	mu     sync.Mutex
	out    io.Writer
	status io.Writer // nil: status lines are dropped (Config.Quiet)
}

func newConsole(cfg Config, io IO) *Console {
	c := &Console{out: io.Out, status: io.Status}
	if cfg.Quiet {
		c.status = nil
	}
	return c
}

// Say prints a line of the room: a message or a notice.
func (c *Console) Say(format string, args ...any) { c.line(c.out, format, args...) }

// Statusf prints a status line about discovery and connections.
func (c *Console) Statusf(format string, args ...any) { c.line(c.status, "-- "+format, args...) }

func (c *Console) line(w io.Writer, format string, args ...any) {
	if c == nil || w == nil {
		return
	}
	s := fmt.Sprintf(format, args...) + "\n"
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(w, s)
}
