package chat

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// TestSanitizeHostile: what the network sends (a nick, a line, a dial
// error's text) prints as part of one line, and without U+FFFD: invalid
// UTF-8, controls, escape sequences, bidi overrides and U+FFFD itself
// (which JSON decoding makes of invalid UTF-8) become '?'; printable text
// passes as it is.
func TestSanitizeHostile(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice", "alice"},
		{"zoë 漢字 🙂 <b>&", "zoë 漢字 🙂 <b>&"},
		{"tab\there", "tab here"},
		{"\xff\xfebad", "??bad"},
		{"ev\uFFFDil", "ev?il"},
		{"\x1b[2Jclear\x1b]0;title\x07", "?[2Jclear?]0;title?"},
		{"line\nforged\r\n", "line?forged??"},
		{"\u202eevil\u2028\u0085\x7f", "?evil???"},
		{"\U000F0000private", "?private"},
	} {
		if got := sanitize(c.in, maxText); got != c.want {
			t.Errorf("sanitize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	long := strings.Repeat("\xff", 3*maxNick) + "tail"
	if got := sanitize(long, maxNick); got != strings.Repeat("?", maxNick) {
		t.Errorf("sanitize of a long hostile nick = %q, want %d '?'", got, maxNick)
	}
}

// FuzzSanitize: whatever comes in, what comes out is valid UTF-8, within
// the bound, holds nothing a terminal acts on (checked by terminalSafe's
// rules, not sanitize's) and no U+FFFD, is its own sanitized form, and is
// the input itself when the input was already safe.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"alice", "zoë 漢字 🙂", "\xff\xfe<", "\x1b[2J\x1b]0;t\x07", "a\nb\r\tc", "\u202e\u2028\u0085\uFFFD", "\U000F0000\U0010FFFF", "\xed\xa0\x80"} {
		f.Add(s, 10)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 4*maxText {
			max = maxText
		}
		out := sanitize(s, max)
		if !utf8.ValidString(out) {
			t.Fatalf("sanitize(%q) = %q: not valid UTF-8", s, out)
		}
		if n := utf8.RuneCountInString(out); n > max {
			t.Fatalf("sanitize(%q, %d) has %d characters", s, max, n)
		}
		safe := true
		for _, r := range out {
			if !terminalSafe(r) {
				t.Fatalf("sanitize(%q) = %q carries %U", s, out, r)
			}
		}
		for _, r := range s {
			// Letters, marks, numbers, punctuation, symbols and the
			// ASCII space: text, left as it is.
			safe = safe && r != utf8.RuneError && (r == ' ' || unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S))
		}
		if again := sanitize(out, max); again != out {
			t.Fatalf("sanitize(%q) = %q, and again %q", s, out, again)
		}
		if safe && utf8.RuneCountInString(s) <= max && out != s {
			t.Fatalf("sanitize changed safe text %q to %q", s, out)
		}
	})
}
