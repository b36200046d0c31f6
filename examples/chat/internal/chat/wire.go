package chat

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
)

// What travels on the room's topic: one JSON object per pubsub message.
// pubsub signs every message with the author's host key (its default
// StrictSign policy), so the author's peer ID is proven; the nick in it is
// only what the author calls itself.

// Message kinds.
const (
	kindText  = "msg"   // a line typed in the room
	kindHello = "hello" // who I am; sent whenever a member appears
	kindBye   = "bye"   // I am leaving (/quit)
)

// maxText bounds a line, in characters; longer lines are cut on receipt.
const maxText = 2000

// maxWire bounds a message on the wire; pubsub's own limit is 1 MiB.
const maxWire = 16 << 10

// wireMessage is one message on the topic.
type wireMessage struct {
	Kind string `json:"k"`
	Nick string `json:"n"`
	Text string `json:"t,omitempty"`
	// Joined is when the author joined the room (Unix milliseconds), so a
	// hello can say "joined" to those who were there first and "is here"
	// to newcomers.
	Joined int64 `json:"j,omitempty"`
	// Knows lists the peers whose hello the author has received (a
	// hello's acknowledgement): a member keeps saying hello until everyone
	// present lists it.
	Knows []string `json:"kn,omitempty"`
	// Seq numbers the author's messages within its session (from 1), so
	// a message that reaches a member twice, over pubsub through another
	// member and over the relayed path, is shown once. Zero: unnumbered.
	Seq int64 `json:"q,omitempty"`
}

// maxKnows bounds the acknowledgements one hello carries and is read
// for: a room larger than this greets its surplus members only once.
const maxKnows = 200

// maxKnowsID bounds one entry of Knows. A peer ID's text is 46 to about 60
// characters for every key type, so a longer entry names nobody; it is
// dropped on receipt rather than kept and compared.
const maxKnowsID = 128

func (m wireMessage) encode() []byte {
	b, _ := json.Marshal(m) // strings and an int: cannot fail
	return b
}

var errBadMessage = errors.New("malformed room message")

// decodeMessage parses a message from another member, who may send
// anything: the text is cut to size and stripped of what would act on a
// terminal (a newline would forge a line, an escape sequence could take
// over the user's terminal), and Knows keeps only entries that could be
// peer IDs.
//
// What it returns is its own fixed point: encoding it and decoding again
// gives it back. So a message is refused when its sanitized form would
// not fit maxWire, which only a hostile sender achieves (each byte of
// invalid UTF-8 becomes a 3-byte U+FFFD, each '<' a 6-byte \u003c).
func decodeMessage(b []byte) (wireMessage, error) {
	var m wireMessage
	if len(b) > maxWire || json.Unmarshal(b, &m) != nil {
		return wireMessage{}, errBadMessage
	}
	switch m.Kind {
	case kindText, kindHello, kindBye:
	default:
		return wireMessage{}, errBadMessage
	}
	m.Nick = strings.ReplaceAll(sanitize(m.Nick, maxNick), " ", "_")
	m.Knows = cleanKnows(m.Knows)
	m.Text = sanitize(m.Text, maxText)
	if len(m.encode()) > maxWire {
		return wireMessage{}, errBadMessage
	}
	return m, nil
}

// cleanKnows returns the first maxKnows entries of knows that are not
// empty and no longer than maxKnowsID; nil if none is.
func cleanKnows(knows []string) []string {
	var out []string
	for _, id := range knows {
		if len(out) == maxKnows {
			break
		}
		if id != "" && len(id) <= maxKnowsID {
			out = append(out, id)
		}
	}
	return out
}

func (m wireMessage) joinedAt() time.Time {
	if m.Joined <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(m.Joined)
}

// sanitize returns s cut to max characters, safe to print as part of one
// line: tabs become spaces, and every character a terminal would act on
// or cannot show becomes '?': controls (a newline would forge a line, ESC
// starts an escape sequence that could take over the terminal), format
// characters such as bidi overrides, line separators, private use and
// unassigned code points, invalid UTF-8, and U+FFFD itself, which is what
// JSON decoding makes of invalid UTF-8 and which reads as a broken
// terminal rather than as a name.
func sanitize(s string, max int) string {
	var b strings.Builder
	n := 0
	for len(s) > 0 && n < max {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == '\t':
			r = ' '
		case r == utf8.RuneError || !unicode.IsPrint(r):
			r = unsafeChar
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// unsafeChar stands for a character sanitize took out.
const unsafeChar = '?'

// shortID is the tail of a peer ID: every Ed25519 peer ID begins with
// "12D3KooW", so the end is what tells two apart.
func shortID(id peer.ID) string {
	s := id.String()
	if len(s) <= 6 {
		return s
	}
	return "…" + s[len(s)-6:]
}

// DefaultNick is the nick of a peer that chose none: "peer-" and the end
// of its peer ID.
func DefaultNick(id peer.ID) string {
	s := id.String()
	if len(s) > 6 {
		s = s[len(s)-6:]
	}
	return "peer-" + s
}
