package pkarrrelay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Checking a bbolt file before use, and surviving one that is damaged.
//
// bbolt trusts its pages: it maps the file and follows whatever offsets and
// page numbers it finds. In a damaged file that means an index out of
// range, a failed assertion, a read past the end of the mapping (a fault,
// which Go turns into a fatal error unless the goroutine asked for a
// panic), or a page that points back at its ancestor (an endless descent).
// So OpenBoltStore first reads the file's structure itself, with plain
// reads rather than the mapping, and refuses what bbolt could not walk
// safely; then runs bbolt's own consistency check; and every bbolt call
// afterwards runs under guard, so that damage appearing later is an error.

// guard runs fn, which reads the mapped file, and turns a panic or a memory
// fault inside it into an error matching ErrDamaged. bbolt's View and
// Update roll their transaction back as the panic passes, so the database
// stays usable for pages that are intact.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s", ErrDamaged, oneLine(fmt.Sprint(r)))
		}
	}()
	return fn()
}

// oneLine keeps the first line of s, at most 200 bytes of it.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// openGuarded is bolt.Open under guard. An error that says the file is not
// a usable bbolt file matches ErrDamaged; one about the path, or the lock,
// is returned as it is. Should the open itself panic, the file is closed
// again; its mapping, and with it the lock, then stays until the process
// ends (precheckFile exists so that this does not happen).
func openGuarded(path string, opts *bolt.Options) (*bolt.DB, error) {
	var file *os.File
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, ErrDamaged):
		if file != nil {
			file.Close()
		}
		return nil, err
	case errors.Is(err, berrors.ErrTimeout) || errors.As(err, &pathErr):
		return nil, err
	}
	// bbolt's own refusals: ErrInvalid, ErrVersionMismatch, ErrChecksum,
	// "file size too small" and the like.
	return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
}

// precheckFile refuses an existing file that bbolt could not open and
// walk safely: not a bbolt file, shorter than its header says, with a
// freelist page that is not one, or with a tree of pages that leaves the
// file, overlaps itself or has elements outside their page. It lets bbolt
// read nothing but the two metas, and reads the rest with plain reads.
func precheckFile(path string, lockTimeout time.Duration) error {
	info, err := os.Stat(path)
	if err != nil || info.Size() == 0 || !info.Mode().IsRegular() {
		return nil // created, initialized or refused by bbolt itself
	}
	// A read-only open validates the metas' checksums and holds a shared
	// lock, so a relay running on the file is reported as such, not as
	// damage seen in the middle of its writes.
	ro, err := openGuarded(path, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		return err
	}
	defer ro.Close()
	var pageSize, pages int64
	var txid int
	err = guard(func() error {
		return ro.View(func(tx *bolt.Tx) error {
			pageSize = int64(tx.DB().Info().PageSize)
			pages = tx.Size() / pageSize
			txid = tx.ID()
			return nil
		})
	})
	if err != nil {
		return err
	}
	if info.Size() < pages*pageSize {
		return fmt.Errorf("%w: truncated to %d bytes, its header records %d", ErrDamaged, info.Size(), pages*pageSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c := &fileCheck{f: f, pageSize: pageSize, pages: pages, seen: make([]uint64, (pages+63)/64)}
	meta, err := c.meta(txid)
	if err != nil {
		return err
	}
	if err := c.freelist(be.Uint64(meta[32:])); err != nil {
		return err
	}
	return c.tree(be.Uint64(meta[16:]), 0)
}

// The parts of bbolt's file format (version 2) fileCheck reads, all in the
// machine's byte order:
//
//	page:    id u64 | flags u16 | count u16 | overflow u32 | elements...
//	meta:    page header | magic u32 | version u32 | page size u32 |
//	         flags u32 | root u64 | sequence u64 | freelist u64 | pgid u64 |
//	         txid u64 | checksum u64
//	branch element: pos u32 | ksize u32 | pgid u64    (key at element + pos)
//	leaf element:   flags u32 | pos u32 | ksize u32 | vsize u32
//	                (key at element + pos, value right after it)
//	bucket value:   root u64 | sequence u64 | inline leaf page when root is 0
const (
	boltPageHeader   = 16
	boltElementSize  = 16
	boltMagic        = 0xED0CDAED
	boltBranchFlag   = 0x01
	boltLeafFlag     = 0x02
	boltFreelistFlag = 0x10
	boltBucketLeaf   = 0x01
	boltNoFreelist   = ^uint64(0)
	// boltMaxDepth bounds the tree walk. bbolt's B+trees are a few levels
	// deep; buckets in buckets add theirs, and this layout has none.
	boltMaxDepth = 64
)

var be = binary.NativeEndian

// fileCheck reads a bbolt file's pages with plain reads.
type fileCheck struct {
	f               *os.File
	pageSize, pages int64
	seen            []uint64 // one bit per page reached from the root
}

// meta returns the meta page bbolt chose: the one with transaction txid.
func (c *fileCheck) meta(txid int) ([]byte, error) {
	for i := range int64(2) {
		m := make([]byte, boltPageHeader+64)
		if _, err := c.f.ReadAt(m, i*c.pageSize); err != nil {
			continue
		}
		m = m[boltPageHeader:]
		if be.Uint32(m[0:]) == boltMagic && be.Uint64(m[48:]) == uint64(txid) && be.Uint64(m[40:]) == uint64(c.pages) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: no meta page matches transaction %d", ErrDamaged, txid)
}

// page reads page id and its overflow pages, checking the header.
func (c *fileCheck) page(id uint64) ([]byte, error) {
	if id < 2 || id >= uint64(c.pages) {
		return nil, fmt.Errorf("%w: page %d outside the file's %d pages", ErrDamaged, id, c.pages)
	}
	var hdr [boltPageHeader]byte
	if _, err := c.f.ReadAt(hdr[:], int64(id)*c.pageSize); err != nil {
		return nil, fmt.Errorf("%w: reading page %d: %v", ErrDamaged, id, err)
	}
	overflow := uint64(be.Uint32(hdr[12:]))
	switch {
	case be.Uint64(hdr[0:]) != id:
		return nil, fmt.Errorf("%w: page %d calls itself %d", ErrDamaged, id, be.Uint64(hdr[0:]))
	case overflow >= uint64(c.pages)-id:
		return nil, fmt.Errorf("%w: page %d claims %d overflow pages beyond the file's %d", ErrDamaged, id, overflow, c.pages)
	}
	b := make([]byte, (int64(overflow)+1)*c.pageSize)
	if _, err := c.f.ReadAt(b, int64(id)*c.pageSize); err != nil {
		return nil, fmt.Errorf("%w: reading page %d: %v", ErrDamaged, id, err)
	}
	return b, nil
}

// freelist checks that the freelist page is one and lists only pages
// inside the file: bbolt reads it while opening a file for writing.
func (c *fileCheck) freelist(id uint64) error {
	if id == boltNoFreelist {
		return nil // bbolt rebuilds it by walking the file
	}
	p, err := c.page(id)
	if err != nil {
		return err
	}
	if be.Uint16(p[8:]) != boltFreelistFlag {
		return fmt.Errorf("%w: page %d is not the freelist its header names", ErrDamaged, id)
	}
	count, start := uint64(be.Uint16(p[10:])), uint64(boltPageHeader)
	if count == 0xFFFF {
		count, start = be.Uint64(p[boltPageHeader:]), boltPageHeader+8
	}
	if count > (uint64(len(p))-start)/8 {
		return fmt.Errorf("%w: freelist page %d claims %d entries", ErrDamaged, id, count)
	}
	for i := range count {
		if free := be.Uint64(p[start+8*i:]); free < 2 || free >= uint64(c.pages) {
			return fmt.Errorf("%w: freelist lists page %d of %d", ErrDamaged, free, c.pages)
		}
	}
	return nil
}

// tree checks the pages of the bucket rooted at page id and of the buckets
// within it: each page reached once, each element and key inside its page.
func (c *fileCheck) tree(id uint64, depth int) error {
	if depth > boltMaxDepth {
		return fmt.Errorf("%w: pages nested deeper than %d", ErrDamaged, boltMaxDepth)
	}
	if id < 2 || id >= uint64(c.pages) {
		return fmt.Errorf("%w: page %d outside the file's %d pages", ErrDamaged, id, c.pages)
	}
	if c.seen[id/64]&(1<<(id%64)) != 0 {
		return fmt.Errorf("%w: page %d reached twice", ErrDamaged, id)
	}
	c.seen[id/64] |= 1 << (id % 64)
	p, err := c.page(id)
	if err != nil {
		return err
	}
	switch be.Uint16(p[8:]) {
	case boltBranchFlag:
		return c.branch(id, p, depth)
	case boltLeafFlag:
		return c.leaf(id, p, depth)
	}
	return fmt.Errorf("%w: page %d in a bucket's tree is neither branch nor leaf (flags %#x)", ErrDamaged, id, be.Uint16(p[8:]))
}

func (c *fileCheck) branch(id uint64, p []byte, depth int) error {
	count := int(be.Uint16(p[10:]))
	if count == 0 || boltPageHeader+count*boltElementSize > len(p) {
		return fmt.Errorf("%w: branch page %d claims %d elements", ErrDamaged, id, count)
	}
	for i := range count {
		e := boltPageHeader + i*boltElementSize
		if !inside(p, e, be.Uint32(p[e:]), be.Uint32(p[e+4:]), 0) {
			return fmt.Errorf("%w: branch page %d element %d outside the page", ErrDamaged, id, i)
		}
		if err := c.tree(be.Uint64(p[e+8:]), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leaf checks a leaf page, or an inline bucket's page (id 0), and descends
// into the buckets it holds.
func (c *fileCheck) leaf(id uint64, p []byte, depth int) error {
	if len(p) < boltPageHeader || id == 0 && be.Uint16(p[8:]) != boltLeafFlag {
		return fmt.Errorf("%w: leaf page %d: an inline bucket that is not a leaf page", ErrDamaged, id)
	}
	count := int(be.Uint16(p[10:]))
	if boltPageHeader+count*boltElementSize > len(p) {
		return fmt.Errorf("%w: leaf page %d claims %d elements", ErrDamaged, id, count)
	}
	for i := range count {
		e := boltPageHeader + i*boltElementSize
		flags, pos, ksize, vsize := be.Uint32(p[e:]), be.Uint32(p[e+4:]), be.Uint32(p[e+8:]), be.Uint32(p[e+12:])
		if !inside(p, e, pos, ksize, vsize) {
			return fmt.Errorf("%w: leaf page %d element %d outside the page", ErrDamaged, id, i)
		}
		if flags&boltBucketLeaf == 0 {
			continue
		}
		v := p[e+int(pos)+int(ksize):][:vsize]
		if len(v) < 16 {
			return fmt.Errorf("%w: leaf page %d element %d: bucket header of %d bytes", ErrDamaged, id, i, len(v))
		}
		if depth+1 > boltMaxDepth {
			return fmt.Errorf("%w: buckets nested deeper than %d", ErrDamaged, boltMaxDepth)
		}
		var err error
		if root := be.Uint64(v); root != 0 {
			err = c.tree(root, depth+1)
		} else {
			err = c.leaf(0, v[16:], depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// inside reports whether the key (and value) of the element at offset e of
// p, which start pos bytes after the element, lie within p.
func inside(p []byte, e int, pos, ksize, vsize uint32) bool {
	end := uint64(e) + uint64(pos) + uint64(ksize) + uint64(vsize)
	return end <= uint64(len(p))
}

// checkTx runs bbolt's consistency check: pages neither in use nor free,
// pages both, keys out of order. precheckFile has made sure its walk stays
// inside the file and ends, which matters because it runs in a goroutine of
// its own, where a fault could not be caught.
func checkTx(tx *bolt.Tx) error {
	var first error
	n := 0
	for err := range tx.Check(bolt.WithKVStringer(shortKV{})) {
		if first == nil {
			first = err
		}
		n++
	}
	if first != nil {
		return fmt.Errorf("%w: consistency check: %s (%d problems)", ErrDamaged, oneLine(first.Error()), n)
	}
	return nil
}

// shortKV shows keys and values in consistency-check errors by their first
// bytes, which keeps an error on one readable line.
type shortKV struct{}

func (shortKV) KeyToString(b []byte) string   { return shortHex(b) }
func (shortKV) ValueToString(b []byte) string { return shortHex(b) }

func shortHex(b []byte) string {
	if len(b) > 8 {
		return fmt.Sprintf("%x...", b[:8])
	}
	return fmt.Sprintf("%x", b)
}
