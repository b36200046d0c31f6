package pkarrclient

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// Fuzz targets for what a relay (or a key file) hands the client: response
// headers, error bodies and secret key files.

// FuzzParseRetryAfter checks that a relay's Retry-After can never make the
// client wait less than nothing or more than maxRetryAfter, and that the two
// well-formed shapes (delta-seconds, HTTP-date) mean exactly what they say.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"", "0", "2", " 120 ", "-5", "1.5", "soon", "3599", "3600", "3601",
		"18446744073709551615", "18446744073709551616", "99999999999999999999999", "99999999999999999999999x",
		"+5", "0x10", "1_000", "\t7\r\n",
		now.Add(30 * time.Second).Format(http.TimeFormat),
		now.Add(-time.Minute).Format(http.TimeFormat),
		now.Add(48 * time.Hour).Format(http.TimeFormat),
		now.Add(90 * time.Second).Format(time.RFC850),
		now.Add(90 * time.Second).Format(time.ANSIC),
		"Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
	} {
		f.Add(s, now.Unix(), int64(0))
	}
	f.Add("Wed, 01 Jan 2025 12:00:30 GMT", now.Unix(), int64(999_999_999))
	f.Add("Wed, 01 Jan 2025 12:00:30 GMT", int64(-1<<62), int64(0))
	f.Add("Wed, 01 Jan 2025 12:00:30 GMT", int64(1<<62), int64(0))
	f.Fuzz(func(t *testing.T, h string, sec, nsec int64) {
		// Keep "now" within ±35,000 years, where adding a second cannot
		// wrap time.Time around.
		now := time.Unix(sec%(1<<40), nsec)
		d := parseRetryAfter(h, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q, %v) = %v, outside [0, %v]", h, now, d, maxRetryAfter)
		}
		trimmed := strings.TrimSpace(h)
		if trimmed != "" && strings.Trim(trimmed, "0123456789") == "" {
			// delta-seconds: exact below the cap, the cap above it.
			want := maxRetryAfter
			if n, err := strconv.ParseUint(trimmed, 10, 64); err == nil && n < uint64(maxRetryAfter/time.Second) {
				want = time.Duration(n) * time.Second
			}
			if d != want {
				t.Fatalf("parseRetryAfter(%q) = %v, want %v", h, d, want)
			}
			return
		}
		if ht, err := http.ParseTime(trimmed); err == nil {
			want := min(max(ht.Sub(now), 0), maxRetryAfter)
			if d != want {
				t.Fatalf("parseRetryAfter(%q, %v) = %v, want %v", h, now, d, want)
			}
			// A later "now" never asks for a longer wait.
			if later := parseRetryAfter(h, now.Add(time.Second)); later > d {
				t.Fatalf("parseRetryAfter(%q): waiting grew from %v to %v as time passed", h, d, later)
			}
			return
		}
		// Anything else is malformed: no wait (the caller backs off on its
		// own).
		if d != 0 {
			t.Fatalf("malformed Retry-After %q gave %v", h, d)
		}
	})
}

// FuzzRelayMessage checks that whatever a relay puts in an error body, the
// text that reaches the client's error is short, valid UTF-8, one line and
// printable, and comes from one line of the body.
func FuzzRelayMessage(f *testing.F) {
	for _, s := range []string{
		"", "  \n\nbad key\nmore", "a\tb\x00c\x7f", "\xff\xfeoops", "rate limited\r\n",
		strings.Repeat("é", 200), strings.Repeat("a", 119) + "é", strings.Repeat("a", 600),
		"\u202eevil\u2066", "\x1b[31mred\x1b[0m", "\u2028line\u2029sep", " \u00a0x\u00a0 ",
		"\xe2\x82", strings.Repeat("\U0001F600", 40), "\x01\x02\nreal message",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := relayMessage(bytes.NewReader(body))
		if !utf8.ValidString(got) {
			t.Fatalf("relayMessage(%q) = %q, invalid UTF-8", body, got)
		}
		text, truncated := strings.CutSuffix(got, "…")
		if len(text) > maxMessageLen {
			t.Fatalf("relayMessage(%q) = %q, %d bytes before the ellipsis", body, got, len(text))
		}
		if len(got) > maxMessageLen+len("…") {
			t.Fatalf("relayMessage(%q) = %q, %d bytes", body, got, len(got))
		}
		for _, c := range got {
			if !unicode.IsPrint(c) {
				t.Fatalf("relayMessage(%q) = %q, holds non-printable %U", body, got, c)
			}
		}
		if strings.TrimLeftFunc(got, unicode.IsSpace) != got ||
			!truncated && strings.TrimRightFunc(got, unicode.IsSpace) != got {
			t.Fatalf("relayMessage(%q) = %q, not trimmed", body, got)
		}
		// Everything returned comes, in order, from one line of the
		// (bounded, UTF-8-repaired) body.
		read := body[:min(len(body), maxMessageRead)]
		repaired := strings.ToValidUTF8(string(read), "\uFFFD")
		fromOneLine := false
		for _, line := range strings.FieldsFunc(repaired, func(c rune) bool { return c == '\r' || c == '\n' }) {
			fromOneLine = fromOneLine || isSubsequence(text, line)
		}
		if got != "" && !fromOneLine {
			t.Fatalf("relayMessage(%q) = %q, not drawn from one line of the body", body, got)
		}
		// A body with any printable text on some line yields a message.
		if got == "" && strings.ContainsFunc(repaired, func(c rune) bool { return unicode.IsPrint(c) && !unicode.IsSpace(c) }) {
			t.Fatalf("relayMessage(%q) = empty, but the body has printable text", body)
		}
		// Reading never goes past maxMessageRead: bytes after it change nothing.
		if len(body) > maxMessageRead {
			if again := relayMessage(bytes.NewReader(read)); again != got {
				t.Fatalf("relayMessage depends on bytes past %d: %q vs %q", maxMessageRead, got, again)
			}
		}
	})
}

// isSubsequence reports whether the runes of sub appear in s in order.
func isSubsequence(sub, s string) bool {
	for _, c := range sub {
		i := strings.IndexRune(s, c)
		if i < 0 {
			return false
		}
		s = s[i+utf8.RuneLen(c):]
	}
	return true
}

// FuzzParseSeedFile checks the secret key file parser: it accepts exactly a
// 32-byte raw seed, or 64 hex digits followed by any CR/LF, decodes them to
// that seed, leaves the caller's buffer alone (LoadSecretKey wipes it), and
// never puts file contents in its error.
func FuzzParseSeedFile(f *testing.F) {
	seed := bytes.Repeat([]byte{0x5a}, SeedSize)
	hexSeed := hex.EncodeToString(seed)
	for _, s := range []string{
		string(seed), hexSeed, hexSeed + "\n", hexSeed + "\r\n", strings.ToUpper(hexSeed) + "\n\n",
		hexSeed[:63] + "g", hexSeed + " ", " " + hexSeed, hexSeed + "0", hexSeed + "\n0",
		string(seed) + "\n", string(seed[:31]), "", "\n", strings.Repeat("\r\n", 16),
		hexSeed[:32], hexSeed + "\x00",
	} {
		f.Add([]byte(s))
	}
	const path = "/keys/node.key"
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		sk, err := parseSeedFile(b, path)
		if !bytes.Equal(b, orig) {
			t.Fatalf("parseSeedFile modified its input")
		}

		// The specification, written independently of the parser.
		var want []byte
		switch text := bytes.TrimRight(b, "\r\n"); {
		case len(b) == SeedSize:
			want = bytes.Clone(b)
		case len(text) == 2*SeedSize && isHexDigits(text):
			want = make([]byte, SeedSize)
			for i := range want {
				v, _ := strconv.ParseUint(string(text[2*i:2*i+2]), 16, 8)
				want[i] = byte(v)
			}
		}

		if want != nil {
			if err != nil {
				t.Fatalf("parseSeedFile(%q) failed: %v", b, err)
			}
			if sk == nil || !bytes.Equal(sk.Seed(), want) {
				t.Fatalf("parseSeedFile(%q) returned the wrong seed", b)
			}
			// The key must not alias the caller's buffer, which
			// LoadSecretKey clears.
			clear(b)
			if !bytes.Equal(sk.Seed(), want) {
				t.Fatalf("parseSeedFile(%q): key shares memory with the input", orig)
			}
			return
		}
		if err == nil || sk != nil {
			t.Fatalf("parseSeedFile(%q) accepted a %d-byte file", b, len(b))
		}
		if !errors.Is(err, ErrInvalidSecretKey) {
			t.Fatalf("parseSeedFile(%q): error %v does not match ErrInvalidSecretKey", b, err)
		}
		// The error depends on the length only: a file of the same length
		// holding no key material gives the very same text.
		filler := bytes.Repeat([]byte{'z'}, len(b))
		_, ferr := parseSeedFile(filler, path)
		if ferr == nil || ferr.Error() != err.Error() {
			t.Fatalf("parseSeedFile(%q): error %q depends on the content (filler gives %v)", b, err, ferr)
		}
		if len(b) >= 8 && strings.Contains(err.Error(), string(b)) {
			t.Fatalf("parseSeedFile(%q): error %q echoes the file", b, err)
		}
	})
}

func isHexDigits(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// FuzzParseStoredNodes checks Pkarr-Dht-Stored-Nodes: never negative, and a
// positive count is exactly the number the relay wrote.
func FuzzParseStoredNodes(f *testing.F) {
	for _, s := range []string{
		"", "0", "7", " 12 ", "-1", "+3", "007", "1e3", "0x10", "1_000", "9223372036854775807",
		"9223372036854775808", "-9223372036854775808", "\t5\r\n", "٣", "5 6",
	} {
		f.Add(s, "")
	}
	f.Add("3", "4")
	f.Fuzz(func(t *testing.T, v, second string) {
		h := http.Header{}
		h[headerDHTStoredNodes] = []string{v}
		if second != "" {
			h[headerDHTStoredNodes] = append(h[headerDHTStoredNodes], second)
		}
		n := parseStoredNodes(h)
		if n < 0 {
			t.Fatalf("parseStoredNodes(%q) = %d", v, n)
		}
		trimmed := strings.TrimSpace(v)
		if n > 0 {
			// Canonical form of what was written: no sign, no leading zeros.
			canon := strings.TrimLeft(strings.TrimPrefix(trimmed, "+"), "0")
			if canon != strconv.Itoa(n) {
				t.Fatalf("parseStoredNodes(%q) = %d, not what the relay wrote", v, n)
			}
		}
		if trimmed != "" && len(trimmed) <= 18 && strings.Trim(trimmed, "0123456789") == "" {
			want, _ := strconv.Atoi(trimmed)
			if n != want {
				t.Fatalf("parseStoredNodes(%q) = %d, want %d", v, n, want)
			}
		}
		if parseStoredNodes(http.Header{}) != 0 {
			t.Fatal("a missing header is not 0")
		}
	})
}
