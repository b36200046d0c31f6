package pkarrclient

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
)

// loadVector reads a "name value" file such as testdata/pkarr-packet-a.txt,
// copied from shared/vectors, whose packet was computed independently of
// this code from the pkarr specification.
func loadVector(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, " ")
		v[name] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorPacketA(t *testing.T) {
	v := loadVector(t, "testdata/pkarr-packet-a.txt")
	sk, err := SecretKeyFromSeed(mustHex(t, v["seed_hex"]))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sk.PublicKey().Bytes()); got != v["pubkey_hex"] {
		t.Fatalf("public key %s, want %s", got, v["pubkey_hex"])
	}
	if got := sk.PublicKey().String(); got != v["pubkey_z32"] {
		t.Fatalf("z32 %s, want %s", got, v["pubkey_z32"])
	}
	ts, err := strconv.ParseUint(v["timestamp_us"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The record as the vector states it: _iroh TTL 30 IN TXT "relay=...".
	p, err := NewBuilder().
		Timestamp(Timestamp(ts)).
		TXT("_iroh", 30, "relay=https://euw1-1.relay.iroh.network./").
		Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(p.DNS()); got != v["dns_hex"] {
		t.Errorf("dns\n got %s\nwant %s", got, v["dns_hex"])
	}
	dnsBytes := mustHex(t, v["dns_hex"])
	if got := string(signable(Timestamp(ts), dnsBytes)[:len(v["signed_prefix"])]); got != v["signed_prefix"] {
		t.Errorf("signed prefix %q, want %q", got, v["signed_prefix"])
	}
	if got := hex.EncodeToString(p.Signature()); got != v["sig_hex"] {
		t.Errorf("signature\n got %s\nwant %s", got, v["sig_hex"])
	}
	want := mustHex(t, v["packet_hex"])
	if !bytes.Equal(p.Bytes(), want) {
		t.Fatalf("packet\n got %x\nwant %x", p.Bytes(), want)
	}

	// And the other direction: the vector's bytes parse and verify.
	q, err := ParseSignedPacket(want)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Equal(p) || q.Timestamp() != Timestamp(ts) {
		t.Fatalf("parsed packet differs: %v vs %v", q, p)
	}
	if got := q.TXT("_iroh"); len(got) != 1 || got[0] != "relay=https://euw1-1.relay.iroh.network./" {
		t.Fatalf("TXT(_iroh) = %q", got)
	}
	r, err := ParseRelayPayload(sk.PublicKey(), want[PublicKeySize:])
	if err != nil || !r.Equal(p) {
		t.Fatalf("relay payload: %v, equal=%v", err, r.Equal(p))
	}
}

func TestVectorZBase32(t *testing.T) {
	for _, tc := range []struct{ z32, hex string }{
		// pkarr's key tests
		{"yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no", "01b467a3b7913ab27a04a8edf2f3fb074cfe0ecf4babe108d67be3853b0f26c5"},
		// iroh's endpoint-info tests
		{"dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy", "1992d53c02cdc04566e5c0edb1ce83305cd550297953a047a445ea3264b54b18"},
	} {
		raw := mustHex(t, tc.hex)
		if got := EncodeZBase32(raw); got != tc.z32 {
			t.Errorf("EncodeZBase32(%s) = %s, want %s", tc.hex, got, tc.z32)
		}
		got, err := DecodeZBase32(tc.z32)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("DecodeZBase32(%s) = %x, %v", tc.z32, got, err)
		}
		pk, err := ParsePublicKey(tc.z32)
		if err != nil || !bytes.Equal(pk[:], raw) {
			t.Errorf("ParsePublicKey(%s) = %x, %v", tc.z32, pk, err)
		}
	}
}
