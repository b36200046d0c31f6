package mainline

import (
	"bytes"
	"crypto/rand"
	"net"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jonboulle/clockwork"
)

// How a serving node stores BEP44 mutable items.
//
// anacrolix v2.24.0 gets two put rules wrong: it compares an incoming cas
// with the cas the stored item was written with, where BEP44 (and
// libtorrent, bittorrent-dht and Rust's mainline) compare it with the
// stored item's seq; and it limits the bencoded v to 1000 bytes, so a raw
// value of 997-1000 bytes, which pkarr and the other implementations take,
// is refused with 205. Both checks sit in bep44.Wrapper, which the server
// always puts in front of its Store, so a Store alone cannot undo them.
//
// The node therefore decides mutable puts itself. Its OnQuery hook
// (itemStore.divertPut) moves the put's item into a *mutablePut and leaves
// the library an immutable placeholder in its place: a 19-byte value
// whose bencoding is unique to this put, with no key or signature. The
// library still does what it does well, checking the write token, sending
// the answer through its rate limiter, and stamping the time its expiry
// reads, and its own checks pass the placeholder, which then reaches
// itemStore.Put. There the real item is checked by BEP44's rules and
// stored, or refused with the KRPC error the library sends back. Nothing
// is kept between the hook and Put: a put with a bad token never reaches
// Put, and its placeholder is garbage.
//
// Immutable puts (no k) keep the library's own handling.

// dhtItemLifetime is how long a serving node keeps an item that is not
// put again (the library's default; BEP44 suggests about 2 hours).
const dhtItemLifetime = 2 * time.Hour

// maxBEP44Value is the largest v a node stores, in raw bytes: the string's
// length for a string (what pkarr, bittorrent-dht and mainline count), the
// bencoding's length for any other value.
const maxBEP44Value = 1000

// maxBEP44Salt is BEP44's limit on salt.
const maxBEP44Salt = 64

// mutablePut is a mutable put on its way from the OnQuery hook to
// itemStore.Put, disguised as an immutable value.
type mutablePut struct {
	nonce [16]byte
	v     any
	k     [32]byte
	salt  []byte
	sig   [64]byte
	seq   int64
	cas   int64 // 0: none (the library decodes an absent cas as 0)
}

// MarshalBencode gives the placeholder a bencoding unique to this put, so
// its immutable target names no stored item.
func (p *mutablePut) MarshalBencode() ([]byte, error) {
	return append([]byte("16:"), p.nonce[:]...), nil
}

var (
	errMissingValue = krpc.Error{Code: krpc.ErrorCodeProtocolError, Msg: "missing or unencodable v"}
	// errSameSeq refuses a different value under the stored seq; BEP44
	// only says that the same value renews the item.
	errSameSeq = krpc.Error{Code: krpc.ErrorCodeSequenceNumberLessThanCurrent,
		Msg: "sequence number equal to current with a different value"}
)

// itemStore is a serving node's BEP44 store: a bounded LRU, because the
// library's default map grows with whatever strangers put, applying
// BEP44's put rules to mutable items.
type itemStore struct {
	lifetime time.Duration
	clock    clockwork.Clock

	// mu makes the check of a mutable put and its store one step.
	mu    sync.Mutex
	items *lru.Cache[bep44.Target, storedItem]
}

// storedItem is an item and when it was last stored, by the store's clock.
type storedItem struct {
	item *bep44.Item
	at   time.Time
}

func newItemStore(capacity int, lifetime time.Duration, clock clockwork.Clock) (*itemStore, error) {
	c, err := lru.New[bep44.Target, storedItem](capacity)
	if err != nil {
		return nil, err
	}
	return &itemStore{lifetime: lifetime, clock: clock, items: c}, nil
}

// onQuery is a serving node's OnQuery hook: guardQuery, then the diversion
// of mutable puts.
func (s *itemStore) onQuery(m *krpc.Msg, source net.Addr) bool {
	if !guardQuery(m, source) {
		return false
	}
	if m.Q == "put" {
		divertPut(m.A)
	}
	return true
}

// divertPut replaces a mutable put's item by a placeholder that carries
// it to Put (see the comment at the top of this file). A put without k is
// immutable and left alone, as is one without seq, which the library
// refuses with 203.
func divertPut(a *krpc.MsgArgs) {
	if a.K == ([32]byte{}) || a.Seq == nil {
		return
	}
	p := &mutablePut{v: a.V, k: a.K, salt: a.Salt, sig: a.Sig, seq: *a.Seq, cas: a.Cas}
	rand.Read(p.nonce[:])
	a.V = p
	a.K = [32]byte{}
	a.Salt = nil
	a.Sig = [64]byte{}
	a.Cas = 0
}

// Put stores an item the library has accepted. A diverted mutable put is
// decided here by BEP44's rules, in their order: size, salt and signature,
// then, against a stored item, cas (which must equal the stored seq), then
// seq (lower: 302; equal: only the same value, which renews the item).
// Refusals are krpc.Error values, which the library sends back as they are.
func (s *itemStore) Put(i *bep44.Item) error {
	p, ok := i.V.(*mutablePut)
	if !ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.items.Add(i.Target(), storedItem{item: i, at: s.clock.Now()})
		return nil
	}
	bv, err := bencode.Marshal(p.v)
	if p.v == nil || err != nil || len(bv) == 0 {
		return errMissingValue
	}
	size := len(bv)
	if str, ok := p.v.(string); ok {
		size = len(str)
	}
	switch {
	case size > maxBEP44Value:
		return bep44.ErrValueFieldTooBig
	case len(p.salt) > maxBEP44Salt:
		return bep44.ErrSaltFieldTooBig
	case !bep44.Verify(p.k[:], p.salt, p.seq, bv, p.sig[:]):
		return bep44.ErrInvalidSignature
	}

	// A copy of the placeholder keeps the time the library stamped on it,
	// which its get handler reads to expire items.
	item := *i
	item.V, item.K, item.Salt, item.Sig, item.Seq, item.Cas = p.v, p.k, p.salt, p.sig, p.seq, 0
	target := item.Target()

	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.live(target); ok {
		switch {
		case p.cas != 0 && p.cas != prev.Seq:
			return bep44.ErrCasHashMismatched
		case p.seq < prev.Seq:
			return bep44.ErrSequenceNumberLessThanCurrent
		case p.seq == prev.Seq && !bytes.Equal(bencode.MustMarshal(prev.V), bv):
			return errSameSeq
		}
	}
	s.items.Add(target, storedItem{item: &item, at: s.clock.Now()})
	return nil
}

// live returns the item stored at t unless it has expired; an expired one
// is removed. The caller holds mu.
func (s *itemStore) live(t bep44.Target) (*bep44.Item, bool) {
	e, ok := s.items.Get(t)
	if !ok {
		return nil, false
	}
	if s.clock.Since(e.at) >= s.lifetime {
		s.items.Remove(t)
		return nil, false
	}
	return e.item, true
}

// Get returns the item stored at t, unless it has expired.
func (s *itemStore) Get(t bep44.Target) (*bep44.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.live(t); ok {
		return i, nil
	}
	return nil, bep44.ErrItemNotFound
}

// Del removes the item stored at t.
func (s *itemStore) Del(t bep44.Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items.Remove(t)
	return nil
}

// noItemStore is a passive node's store: it keeps nothing.
type noItemStore struct{}

func (noItemStore) Put(*bep44.Item) error                 { return nil }
func (noItemStore) Get(bep44.Target) (*bep44.Item, error) { return nil, bep44.ErrItemNotFound }
func (noItemStore) Del(bep44.Target) error                { return nil }
