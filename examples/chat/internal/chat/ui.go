package chat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/fx"
)

// sendTimeout bounds sending one line: the publish (pubsub only queues
// the message, so it takes long only when pubsub is stuck) and Room.Send's
// wait for a path to a member shown as here that none reaches yet.
const sendTimeout = 10 * time.Second

// UI is the line mode: every line read from the input is sent to the room,
// except commands (/peers, /quit, /help); the input's end quits too. It
// draws nothing and moves no cursor, so it works the same in a pipe, a
// terminal and tmux: what others say is printed as whole lines between
// the user's.
type UI struct {
	in   io.Reader
	con  *Console
	room *Room
	mon  *Monitor
	shut fx.Shutdowner
	// sendWait bounds a line's send, its wait for a path included
	// (sendTimeout; tests shorten it).
	sendWait time.Duration

	mu      sync.Mutex
	stopped bool
}

func newUI(lc fx.Lifecycle, io IO, con *Console, room *Room, mon *Monitor, shut fx.Shutdowner) *UI {
	u := &UI{in: io.In, con: con, room: room, mon: mon, shut: shut, sendWait: sendTimeout}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go u.read()
			return nil
		},
		OnStop: func(context.Context) error {
			u.mu.Lock()
			u.stopped = true
			u.mu.Unlock()
			return nil
		},
	})
	return u
}

// read handles the input until it ends or the user quits. A read from a
// terminal cannot be interrupted, so on stop the goroutine is not waited
// for: it ignores whatever comes after, and the process exits.
func (u *UI) read() {
	sc := bufio.NewScanner(u.in)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		if u.isStopped() {
			return
		}
		if !u.line(strings.TrimRight(sc.Text(), "\r")) {
			break
		}
	}
	if !u.isStopped() {
		u.shut.Shutdown()
	}
}

func (u *UI) isStopped() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stopped
}

// line handles one line; it returns false to quit.
func (u *UI) line(s string) bool {
	if strings.TrimSpace(s) == "" {
		return true
	}
	if strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") {
		cmd, _, _ := strings.Cut(strings.TrimSpace(s), " ")
		switch cmd {
		case "/quit", "/exit":
			return false
		case "/peers", "/who":
			u.peers()
		case "/help":
			u.con.Say("* type a line to send it to the room; /peers lists who is here, how they were found and how they are connected (direct, relayed or not); /quit leaves (so does the end of the input); //text sends /text")
		default:
			u.con.Say("* unknown command %s (try /help)", sanitize(cmd, 40))
		}
		return true
	}
	s = strings.TrimPrefix(s, "/") // "//text" sends "/text"
	ctx, cancel := context.WithTimeout(context.Background(), u.sendWait)
	defer cancel()
	n, err := u.room.Send(ctx, sanitize(s, maxText))
	switch {
	case err != nil:
		u.con.Say("* not sent: %v", err)
	case n == 0 && slices.ContainsFunc(u.room.Members(), func(m Member) bool { return m.Here }):
		u.con.Say("* nobody got that: no one here can be reached right now (see /peers)")
	case n == 0:
		u.con.Say("* nobody else is in the room yet: nobody got that")
	}
	return true
}

// peers prints who is here: every room member and every peer discovery
// found, with how it was found and how it is connected: direct (and
// whether by a hole punch), relayed through which relay, or not connected
// and why not.
func (u *UI) peers() {
	members := u.room.Members()
	names := make(map[peer.ID]string, len(members))
	ids := make([]peer.ID, 0, len(members))
	for _, m := range members {
		names[m.ID] = m.Nick
		ids = append(ids, m.ID)
	}
	for _, id := range u.mon.FoundPeers() {
		if _, ok := names[id]; !ok {
			names[id] = ""
			ids = append(ids, id)
		}
	}
	here := 0
	state := make(map[peer.ID]string, len(members))
	for _, m := range members {
		switch {
		case m.Here && m.Reachable:
			here++
			state[m.ID] = "here"
		case m.Here:
			here++
			state[m.ID] = "heard through others"
		case m.Left:
			state[m.ID] = "left"
		default:
			state[m.ID] = "subscribed, not heard yet"
		}
	}
	u.con.Say("* %d in the room besides you (%s):", here, u.room.Nick())
	slices.SortFunc(ids, func(a, b peer.ID) int {
		return strings.Compare(names[a]+"\x00"+a.String(), names[b]+"\x00"+b.String())
	})
	for _, id := range ids {
		name := names[id]
		if name == "" {
			name = "(no name yet)"
		}
		st, ok := state[id]
		if !ok {
			st = "not in the room"
		}
		u.con.Say("*   %-16s %s  %s; %s; %s", name, shortID(id), st, u.howFound(id), u.connState(id))
	}
}

func (u *UI) howFound(id peer.ID) string {
	f, ok := u.mon.FoundPeer(id)
	switch {
	case !ok:
		return "not found by discovery (it found us)"
	case f.Lost:
		return fmt.Sprintf("found via %s after %s, since lost", strings.Join(f.Via, "+"), roundDuration(f.After))
	}
	return fmt.Sprintf("found via %s after %s", strings.Join(f.Via, "+"), roundDuration(f.After))
}

// connState is the link to id: direct (hole punched, if that is how it
// came), relayed through which relay, or not connected and why.
func (u *UI) connState(id peer.ID) string {
	l := u.mon.Link(id)
	var kind string
	switch l.Kind {
	case NotConnected:
		if l.FailedDials == 0 || l.Reason == "" {
			return "not connected"
		}
		return fmt.Sprintf("not connected: %s (%d failed %s)", l.Reason, l.FailedDials, plural(l.FailedDials, "dial"))
	case Relayed:
		kind = "relayed"
		if l.Relay != "" {
			kind += " through " + shortID(l.Relay)
		}
	default:
		kind = "direct"
		if l.HolePunched {
			kind += " (hole punched)"
		}
	}
	dialed := "they dialed"
	if l.Outbound {
		dialed = "we dialed"
	}
	s := fmt.Sprintf("%s, connected since %s (%s ago, %s)", kind, l.Opened.Format("15:04:05"),
		time.Since(l.Opened).Round(time.Second), dialed)
	if l.Kind == Relayed && l.PunchFailed != "" {
		s += "; hole punch failed: " + l.PunchFailed
	}
	return s
}
