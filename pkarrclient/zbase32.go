package pkarrclient

import (
	"encoding/base32"
	"fmt"
	"strings"
)

// zbase32Alphabet is the z-base-32 alphabet (Zooko's human-oriented base-32),
// the text encoding pkarr uses for public keys.
const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// zbase32 is an immutable encoding value, so sharing it is not global state.
var zbase32 = base32.NewEncoding(zbase32Alphabet).WithPadding(base32.NoPadding)

// EncodeZBase32 encodes b in z-base-32, most significant bit first, without
// padding and in lower case, as pkarr does.
func EncodeZBase32(b []byte) string {
	return zbase32.EncodeToString(b)
}

// DecodeZBase32 decodes a z-base-32 string. Upper-case input is accepted,
// because keys often travel inside host names, which are case-insensitive.
//
// Decoding is strict: every character must be in the alphabet, the length must
// be a possible encoding length, and the bits of the last character that do
// not belong to any byte must be zero. Without that last rule several strings
// would decode to the same key, and two peers could disagree about whether
// they hold "the same" name.
func DecodeZBase32(s string) ([]byte, error) {
	s = strings.ToLower(s)
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(zbase32Alphabet, s[i]) < 0 {
			return nil, fmt.Errorf("%w: character %q at offset %d is not in the z-base-32 alphabet",
				ErrInvalidZBase32, s[i], i)
		}
	}
	// Lengths 1, 3 and 6 (mod 8) cannot come from whole bytes.
	switch len(s) % 8 {
	case 1, 3, 6:
		return nil, fmt.Errorf("%w: length %d is not a valid encoding length", ErrInvalidZBase32, len(s))
	}
	b, err := zbase32.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidZBase32, err)
	}
	if EncodeZBase32(b) != s {
		return nil, fmt.Errorf("%w: non-zero padding bits in the last character", ErrInvalidZBase32)
	}
	return b, nil
}
