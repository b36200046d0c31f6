package chat

// FuzzDecodeMessage feeds the room's decoder what any member of the topic
// could publish. The committed corpus is in testdata/fuzz/FuzzDecodeMessage
// and plain go test replays it; the seeds below are messages as Room sends
// them.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzDecodeMessage(f *testing.F) {
	const id = "12D3KooWPGVE7bDCUe4TwWRyu8mPw28h4UFiEPTZdgd1wx2u2zxR"
	for _, m := range []wireMessage{
		{Kind: kindText, Nick: "alice", Text: "hello, room", Joined: 1767225600000},
		{Kind: kindText, Nick: "zoë", Text: "ünïcödé 漢字 🙂 and \"quotes\" \\ <html> & more"},
		{Kind: kindHello, Nick: "bob", Joined: 1767225600123},
		{Kind: kindHello, Nick: "peer-2u2zxR", Knows: []string{id, "12D3KooWEAHwdRCormX5x9pdTCd3wasiQDgYUbV4qrqR87LuvTvv"}},
		{Kind: kindBye, Nick: "carol", Joined: 1},
		{Kind: kindText, Nick: "dave", Text: "numbered", Joined: 1767225600000, Seq: 42},
	} {
		f.Add(m.encode())
	}
	f.Add([]byte(`{"k":"msg","n":"ev il\u001b[2J","t":"line\nforged\u001b]0;title\u0007\tend\u202e\u2028\u0085"}`))
	f.Add([]byte(`{"k":"hello","n":"","kn":["","x",null]}`))
	f.Add([]byte(`{"K":"bye","N":"case","j":-5,"extra":[1,{"a":2}]}`))
	f.Add([]byte(`{"k":"msg","t":"` + "\xff\xfe<" + `"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"k":"msg","q":-9223372036854775808,"j":9223372036854775807}`))
	f.Add([]byte(`{"k":"hello","q":1e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, errBadMessage) || !reflect.DeepEqual(m, wireMessage{}) {
				t.Fatalf("refused with %v and %+v, want errBadMessage and nothing", err, m)
			}
			return
		}
		checkDisarmed(t, m)
		// What is accepted is the decoder's fixed point: it encodes within
		// the wire bound, and that encoding decodes to it again.
		out := m.encode()
		if len(out) > maxWire {
			t.Fatalf("accepted a message whose encoding is %d bytes", len(out))
		}
		again, err := decodeMessage(out)
		if err != nil {
			t.Fatalf("the encoding of an accepted message is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("encode then decode changed the message:\n got %+v\nwant %+v", again, m)
		}
		if !bytes.Equal(again.encode(), out) {
			t.Fatal("an accepted message has two encodings")
		}
	})
}

// FuzzReadFrame feeds the relayed path's frame reader what a member's
// stream could carry. Frames come out within the bound, and written again
// they read back the same; the reader stops at the first error.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, wireMessage{Kind: kindText, Nick: "a", Text: "hi", Seq: 1}.encode()), []byte("{}")))
	f.Add([]byte{0})
	f.Add([]byte{0x80, 0x00})                                                 // a zero length, not minimally encoded
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // 2^64-1
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(binary.AppendUvarint(nil, maxWire+1))
	f.Add(append(binary.AppendUvarint(nil, 5), "abc"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		frames := readFrames(t, b)
		var again []byte
		for _, fr := range frames {
			again = appendFrame(again, fr)
		}
		if back := readFrames(t, again); !reflect.DeepEqual(back, frames) {
			t.Fatalf("frames written again read back as %q, want %q", back, frames)
		}
	})
}

func readFrames(t *testing.T, b []byte) [][]byte {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	var frames [][]byte
	for {
		fr, err := readFrame(br, maxWire)
		if err != nil {
			return frames
		}
		if len(fr) > maxWire {
			t.Fatalf("a frame of %d bytes, over %d", len(fr), maxWire)
		}
		frames = append(frames, fr)
	}
}

// checkDisarmed holds an accepted message to what the terminal may be
// shown, by rules of its own rather than sanitize's: a known kind; nick
// and text valid UTF-8, within their bounds, with nothing a terminal acts
// on (C0 and C1 controls, DEL, format characters such as bidi overrides,
// line and paragraph separators, private use, unassigned code points) and
// no U+FFFD;
// a nick without spaces; a bounded Knows.
func checkDisarmed(t *testing.T, m wireMessage) {
	t.Helper()
	switch m.Kind {
	case kindText, kindHello, kindBye:
	default:
		t.Fatalf("accepted kind %q", m.Kind)
	}
	for _, f := range []struct {
		name string
		s    string
		max  int
	}{{"nick", m.Nick, maxNick}, {"text", m.Text, maxText}} {
		if !utf8.ValidString(f.s) {
			t.Fatalf("%s %q is not valid UTF-8", f.name, f.s)
		}
		if n := utf8.RuneCountInString(f.s); n > f.max {
			t.Fatalf("%s of %d characters, over %d", f.name, n, f.max)
		}
		for _, r := range f.s {
			if !terminalSafe(r) {
				t.Fatalf("%s %q carries %U", f.name, f.s, r)
			}
		}
	}
	if strings.ContainsRune(m.Nick, ' ') {
		t.Fatalf("nick %q has a space", m.Nick)
	}
	if len(m.Knows) > maxKnows {
		t.Fatalf("%d Knows entries, over %d", len(m.Knows), maxKnows)
	}
	for _, k := range m.Knows {
		if k == "" || len(k) > maxKnowsID {
			t.Fatalf("Knows entry of %d bytes", len(k))
		}
	}
}

func terminalSafe(r rune) bool {
	switch {
	case r == ' ':
		return true
	case r == utf8.RuneError:
		return false // what a terminal shows of invalid UTF-8: no one's name
	case r < 0x20, r == 0x7f, 0x80 <= r && r < 0xa0:
		return false
	case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs):
		return false
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs)
}
