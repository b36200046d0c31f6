package pkarrclient

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const vectorZ32 = "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no"

func TestParsePublicKeyForms(t *testing.T) {
	want, err := ParsePublicKey(vectorZ32)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		vectorZ32,
		"  " + vectorZ32 + "\n",
		"pk:" + vectorZ32,
		strings.ToUpper(vectorZ32),
		"http://" + vectorZ32,
		"https://" + vectorZ32 + "/foo/bar",
		"https://foo." + vectorZ32 + ".",
		"https://foo." + vectorZ32 + ".#hash",
		"https://foo@bar." + vectorZ32 + ".?q=v",
		"https://foo@bar." + vectorZ32 + ".:8888?q=v",
		"https://dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy." + vectorZ32,
		"_foo." + vectorZ32,
		"_foo." + vectorZ32 + ".",
	} {
		got, err := ParsePublicKey(in)
		if err != nil || got != want {
			t.Errorf("ParsePublicKey(%q) = %v, %v", in, got, err)
		}
	}
	var pk PublicKey
	if err := pk.UnmarshalText([]byte("pk:" + vectorZ32)); err != nil || pk != want {
		t.Errorf("UnmarshalText: %v", err)
	}
	if text, _ := want.MarshalText(); string(text) != vectorZ32 {
		t.Errorf("MarshalText = %s", text)
	}
}

func TestParsePublicKeyRejects(t *testing.T) {
	// The key with y = 2 has no x on the curve; its z-base-32 form is
	// otherwise perfectly valid.
	notAPoint := EncodeZBase32(append([]byte{2}, make([]byte, 31)...))
	// 52 characters carry 260 bits for 256: the last character's low four
	// bits are padding. "o" is 16 (10000) and "t" is 17 (10001): a lenient
	// decoder returns the same 32 bytes for both.
	nonZeroPad := vectorZ32[:51] + "t"
	for _, in := range []string{
		"",
		"pk:",
		vectorZ32[:51],
		vectorZ32 + "y",
		vectorZ32[:51] + "0", // '0' is not in the alphabet
		vectorZ32[:51] + "l",
		strings.Replace(vectorZ32, "y", "v", 1),
		notAPoint,
		nonZeroPad,
		"https://",
		"https://example.com/" + vectorZ32,
		"http://[::1",
		strings.Repeat("y", 10_000),
	} {
		if _, err := ParsePublicKey(in); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParsePublicKey(%.60q) = %v, want ErrInvalidKey", in, err)
		} else if len(err.Error()) > 300 {
			t.Errorf("error for %.20q is %d bytes long", in, len(err.Error()))
		}
	}
	if _, err := PublicKeyFromBytes(make([]byte, 31)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("31 bytes: %v", err)
	}
}

func TestDecodeZBase32Strict(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5, 16, 31, 32, 33} {
		b := bytes.Repeat([]byte{0xa5}, n)
		s := EncodeZBase32(b)
		got, err := DecodeZBase32(s)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("round trip of %d bytes: %x, %v", n, got, err)
		}
	}
	for _, in := range []string{"y", "yyy", "yyyyyy", "9", "yn", "yb!", "ybndrfg8 "} {
		if _, err := DecodeZBase32(in); !errors.Is(err, ErrInvalidZBase32) {
			t.Errorf("DecodeZBase32(%q) = %v, want ErrInvalidZBase32", in, err)
		}
	}
	// One byte is two characters: 8 bits + 2 padding bits, which must be 0.
	if _, err := DecodeZBase32("yb"); !errors.Is(err, ErrInvalidZBase32) {
		t.Errorf(`"yb" has padding bit set yet decoded`)
	}
	if _, err := DecodeZBase32("yy"); err != nil {
		t.Errorf(`"yy": %v`, err)
	}
}

func TestSecretKeyNeverPrinted(t *testing.T) {
	sk := testKey(t, 0x42)
	seedHex := fmt.Sprintf("%x", sk.Seed())
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("key", "sk", sk)
	for _, s := range []string{
		fmt.Sprint(sk), fmt.Sprintf("%v %+v %#v %x %X %s %q", sk, sk, sk, sk, sk, sk, sk),
		fmt.Sprintf("%v", []any{sk}), logBuf.String(), fmt.Errorf("wrapped: %v", sk).Error(),
	} {
		if strings.Contains(s, seedHex) || strings.Contains(s, seedHex[:16]) {
			t.Fatalf("seed leaked: %s", s)
		}
		if !strings.Contains(s, sk.PublicKey().String()) {
			t.Fatalf("public key missing from %q", s)
		}
	}
}

func TestSecretKeyEqualDestroy(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 1)
	c := testKey(t, 2)
	if !a.Equal(b) || a.Equal(c) || a.Equal(nil) {
		t.Fatal("Equal")
	}
	a.Destroy()
	if a.Equal(b) {
		t.Fatal("destroyed key still equal")
	}
}

func TestSecretKeyFiles(t *testing.T) {
	dir := t.TempDir()
	sk, err := GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "key")
	if err := SaveSecretKey(path, sk); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != SeedSize {
		t.Fatalf("mode %v size %d", st.Mode(), st.Size())
	}
	if err := SaveSecretKey(path, sk); err == nil {
		t.Fatal("SaveSecretKey overwrote an existing file")
	}
	loaded, err := LoadSecretKey(path)
	if err != nil || !loaded.Equal(sk) {
		t.Fatalf("load: %v", err)
	}

	hexPath := filepath.Join(dir, "hex")
	os.WriteFile(hexPath, fmt.Appendf(nil, "%x\n", sk.Seed()), 0o600)
	if k, err := LoadSecretKey(hexPath); err != nil || !k.Equal(sk) {
		t.Fatalf("hex seed file: %v", err)
	}

	open := filepath.Join(dir, "open")
	os.WriteFile(open, sk.Seed(), 0o644)
	os.Chmod(open, 0o644)
	if _, err := LoadSecretKey(open); !errors.Is(err, ErrInsecureKeyFile) {
		t.Fatalf("world-readable key file: %v", err)
	}
	for name, content := range map[string][]byte{
		"short": make([]byte, 31), "long": make([]byte, 33), "empty": nil,
		"bad hex": []byte(strings.Repeat("zz", 32)), "huge": make([]byte, 1<<20),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o600)
		if _, err := LoadSecretKey(p); !errors.Is(err, ErrInvalidSecretKey) {
			t.Errorf("%s: %v", name, err)
		} else if strings.Contains(err.Error(), "zzzz") {
			t.Errorf("%s: error echoes file content: %v", name, err)
		}
	}
	if _, err := LoadSecretKey(dir); !errors.Is(err, ErrInvalidSecretKey) {
		t.Errorf("a directory as a key file: %v", err)
	}
	if _, err := LoadSecretKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
