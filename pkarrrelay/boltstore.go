package pkarrrelay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrSchemaVersion reports a bbolt file written with a layout this version of
// the package does not know.
var ErrSchemaVersion = errors.New("pkarrrelay: unsupported store schema version")

// ErrDamaged reports a bbolt file whose structure is damaged: truncated, not
// a bbolt file, or with a page that does not hold what it should.
// OpenBoltStore refuses such a file, and a Get, Put or flush that meets a
// damaged page fails with it instead of bringing the process down.
var ErrDamaged = errors.New("pkarrrelay: store file damaged")

// The bbolt layout, version 1:
//
//	meta     "schema" -> u64 1; "count" -> u64 number of packets
//	packets  key (32) -> value (see encodeValue)
//	access   key (32) -> u64 recency sequence number
//	recency  sequence (u64 BE) | key (32) -> empty
//
// recency is ordered by sequence number, so its first entry is the least
// recently used packet; access finds a key's entry in it. A higher sequence
// number is a more recent use. The counter itself is not stored: on open it
// resumes from the last recency entry.
var (
	bucketMeta    = []byte("meta")
	bucketPackets = []byte("packets")
	bucketAccess  = []byte("access")
	bucketRecency = []byte("recency")
	metaSchema    = []byte("schema")
	metaCount     = []byte("count")
)

const (
	schemaVersion = 1
	// valueFormat is the first byte of every packet value, so the value
	// layout can change without a new schema.
	valueFormat = 1
	// valueHeaderSize: format (1) | stored, Unix ns (8) | min TTL (4).
	valueHeaderSize = 1 + 8 + 4
	recencyKeySize  = 8 + pkarrclient.PublicKeySize
	// pendingFlushThreshold bounds the recency updates held in memory
	// between timed flushes; past it the flusher runs early.
	pendingFlushThreshold = 1 << 16
	// maxBatch is the most Puts one commit takes, as bbolt's
	// DefaultMaxBatchSize.
	maxBatch = 1000
)

// BoltOption configures OpenBoltStore.
type BoltOption func(*boltConfig) error

type boltConfig struct {
	capacity      int
	flushInterval time.Duration
	batchDelay    time.Duration
	lockTimeout   time.Duration
	logger        *slog.Logger
}

// BoltMaxPackets sets the most packets the store holds (default
// DefaultCapacity). Reopening a store with a smaller capacity evicts the
// least recently used packets down to it.
func BoltMaxPackets(n int) BoltOption {
	return func(c *boltConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: capacity %d, want at least 1", ErrInvalidConfig, n)
		}
		c.capacity = n
		return nil
	}
}

// BoltRecencyFlushInterval sets how often reads are written back to the file
// as recency updates (default 5s). A crash loses at most this much recency,
// never a packet.
func BoltRecencyFlushInterval(d time.Duration) BoltOption {
	return func(c *boltConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: flush interval %v", ErrInvalidConfig, d)
		}
		c.flushInterval = d
		return nil
	}
}

// BoltBatchDelay sets how long a Put waits for other Puts to join its
// commit (default 1ms). Puts that arrive while a commit is fsyncing queue
// for the next one anyway, so on a slow disk
// batches grow by themselves; the delay only adds latency to every Put, and
// bbolt's 10ms default cut throughput by a factor of four in this package's
// benchmark.
func BoltBatchDelay(d time.Duration) BoltOption {
	return func(c *boltConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: batch delay %v", ErrInvalidConfig, d)
		}
		c.batchDelay = d
		return nil
	}
}

// BoltLockTimeout sets how long OpenBoltStore waits for the file lock held by
// another process (default 1s). bbolt would otherwise wait forever, and a
// second relay started on the same file would hang instead of failing.
func BoltLockTimeout(d time.Duration) BoltOption {
	return func(c *boltConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: lock timeout %v", ErrInvalidConfig, d)
		}
		c.lockTimeout = d
		return nil
	}
}

// BoltLogger sets where the store reports background failures, such as
// a recency flush that could not be written (default: discarded).
func BoltLogger(l *slog.Logger) BoltOption {
	return func(c *boltConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		c.logger = l
		return nil
	}
}

// BoltStore is a Store in a bbolt file. It keeps at most a fixed number of
// packets and evicts the least recently used, where both writes and reads
// count as use, and that order survives a restart.
//
// Every Put that returns without error has been committed and fsynced.
// Concurrent Puts share commits, so durability costs one fsync per batch
// rather than per packet. Reads never write: they note the use in memory,
// and a background goroutine writes those notes to the file every few
// seconds and on Close.
type BoltStore struct {
	db  *bolt.DB
	cfg boltConfig

	// count mirrors meta/count so Len needs no transaction.
	count atomic.Int64
	// seq is the last recency sequence number handed out.
	seq    atomic.Uint64
	closed atomic.Bool
	// wedged is set when bbolt itself panicked inside a write transaction
	// (rolling back or committing over a damaged page): its writer lock
	// may still be held, so no write transaction may start again, and
	// Close does not wait for the lock for long.
	wedged atomic.Bool

	// pending holds uses not yet written: key -> sequence number. An entry
	// leaves only after its update is committed, so eviction, which
	// consults pending, never mistakes a recently read packet for an old one.
	mu      sync.Mutex
	pending map[pkarrclient.PublicKey]uint64

	// writes carries Puts to the writer goroutine, which commits them in
	// batches. bbolt's own Batch would run the commit in a goroutine of its
	// own, where a damaged page could not be caught.
	writes     chan *writeReq
	writerDone chan struct{}

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// writeReq is one Put's share of a batch: fn runs inside the batch's
// transaction, done receives the batch's outcome for it.
type writeReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

var _ Store = (*BoltStore)(nil)

// OpenBoltStore opens or creates the bbolt file at path and starts the
// recency flusher. Close the store to stop it.
//
// An existing file is checked before use: its size against the size its
// header records, its freelist, and every page of every bucket's tree (read
// with plain reads, so a truncated or damaged file is refused before bbolt
// follows a page that is not there), then bbolt's consistency check
// (tx.Check). A damaged file is refused with an error matching ErrDamaged;
// move it aside or restore a backup. The checks read the used part of the
// file twice: 200,000 packets (224 MB) took 0.3 to 0.5 s from the page
// cache, where opening without the checks took under a millisecond.
func OpenBoltStore(path string, opts ...BoltOption) (*BoltStore, error) {
	cfg := boltConfig{
		capacity:      DefaultCapacity,
		flushInterval: 5 * time.Second,
		batchDelay:    time.Millisecond,
		lockTimeout:   time.Second,
		logger:        slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if opt == nil { // lets callers build option lists conditionally
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*BoltStore, error) {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("pkarrrelay: opening %s: file is locked (is another relay using it?): %w", path, err)
		}
		return nil, fmt.Errorf("pkarrrelay: opening %s: %w", path, err)
	}
	if err := precheckFile(path, cfg.lockTimeout); err != nil {
		return fail(err)
	}
	db, err := openGuarded(path, &bolt.Options{
		Timeout: cfg.lockTimeout,
		// The map freelist keeps allocation fast in a file of a million
		// small values that churn.
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return fail(err)
	}
	if err := guard(func() error { return db.View(checkTx) }); err != nil {
		db.Close()
		return fail(err)
	}
	s := &BoltStore{
		db:         db,
		cfg:        cfg,
		pending:    make(map[pkarrclient.PublicKey]uint64),
		writes:     make(chan *writeReq),
		writerDone: make(chan struct{}),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if err := guard(func() error { return db.Update(s.initialize) }); err != nil {
		db.Close()
		return fail(err)
	}
	go s.flushLoop()
	go s.writeLoop()
	return s, nil
}

// initialize creates or checks the layout, loads the counters and trims the
// store to its capacity.
func (s *BoltStore) initialize(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketPackets) != nil {
			return fmt.Errorf("%w: packets without a schema marker", ErrSchemaVersion)
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return err
		}
		if err := meta.Put(metaSchema, u64(schemaVersion)); err != nil {
			return err
		}
	}
	if v := meta.Get(metaSchema); len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
		return fmt.Errorf("%w: schema marker %x, want %d", ErrSchemaVersion, v, schemaVersion)
	}
	for _, name := range [][]byte{bucketPackets, bucketAccess, bucketRecency} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	count, ok := readCount(meta)
	if !ok {
		// A missing or damaged count is rebuilt by walking the bucket once.
		count = uint64(tx.Bucket(bucketPackets).Stats().KeyN)
	}
	if k, _ := tx.Bucket(bucketRecency).Cursor().Last(); len(k) == recencyKeySize {
		s.seq.Store(binary.BigEndian.Uint64(k))
	}
	if count > uint64(s.cfg.capacity) {
		evicted, err := s.evict(tx, int(count-uint64(s.cfg.capacity)))
		if err != nil {
			return err
		}
		count -= uint64(evicted)
	}
	s.count.Store(int64(count))
	return meta.Put(metaCount, u64(count))
}

// Put implements Store. When it returns PutStored or PutUnchanged without
// error, the packet is on disk. Cancelling ctx stops a Put that has not
// started; one already queued for commit completes, since it may already be
// on disk.
func (s *BoltStore) Put(ctx context.Context, p *pkarrclient.SignedPacket) (PutOutcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, ErrClosed
	}
	key := p.PublicKey()
	rec := newRecord(p, time.Now())

	// Fast path: a packet older than the held one needs no write
	// transaction. A key's packet only ever gets newer (or is evicted), so
	// the answer stays true after the read.
	var older bool
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPackets).Get(key[:])
		if v == nil {
			return nil
		}
		held, err := decodeValue(v)
		if err != nil {
			return nil // the write path repairs it
		}
		older = compare(rec.Timestamp, rec.Payload, &held) == PutNotMostRecent
		return nil
	})
	if err != nil {
		return 0, s.storeError("put", key, err)
	}
	if older {
		return PutNotMostRecent, nil
	}

	seq := s.seq.Add(1)
	var (
		outcome PutOutcome
		delta   int64
	)
	// The writer may run this function more than once (it retries the
	// rest of a batch alone when one member fails), so it only assigns its
	// results, never accumulates them, and they are used only after the
	// commit succeeds.
	err = s.update(ctx, func(tx *bolt.Tx) error {
		outcome, delta = 0, 0
		packets := tx.Bucket(bucketPackets)
		access := tx.Bucket(bucketAccess)
		recency := tx.Bucket(bucketRecency)
		newSeq := seq
		if v := packets.Get(key[:]); v != nil {
			held, err := decodeValue(v)
			if err == nil {
				outcome = compare(rec.Timestamp, rec.Payload, &held)
				if outcome == PutNotMostRecent {
					return nil
				}
			} else {
				// A damaged value is overwritten: the new packet is
				// verified, the old bytes are useless.
				outcome = PutStored
			}
			if oldSeq, ok := readSeq(access, key); ok {
				newSeq = max(seq, oldSeq)
				if err := recency.Delete(recencyKey(oldSeq, key)); err != nil {
					return err
				}
			}
		} else {
			outcome = PutStored
			meta := tx.Bucket(bucketMeta)
			count, _ := readCount(meta)
			var evicted int
			if count+1 > uint64(s.cfg.capacity) {
				var err error
				if evicted, err = s.evict(tx, int(count+1-uint64(s.cfg.capacity))); err != nil {
					return err
				}
			}
			delta = 1 - int64(evicted)
			if err := meta.Put(metaCount, u64(uint64(int64(count)+delta))); err != nil {
				return err
			}
		}
		if err := packets.Put(key[:], encodeValue(&rec)); err != nil {
			return err
		}
		if err := access.Put(key[:], u64(newSeq)); err != nil {
			return err
		}
		return recency.Put(recencyKey(newSeq, key), nil)
	})
	if err != nil {
		return 0, s.storeError("put", key, err)
	}
	s.count.Add(delta)
	return outcome, nil
}

// evict removes the n least recently used packets inside tx and returns how
// many it removed. Before removing a packet it checks pending: a packet read
// since the last flush gets its recency updated and is skipped.
func (s *BoltStore) evict(tx *bolt.Tx, n int) (int, error) {
	packets := tx.Bucket(bucketPackets)
	access := tx.Bucket(bucketAccess)
	recency := tx.Bucket(bucketRecency)
	evicted := 0
	for evicted < n {
		k, _ := recency.Cursor().First()
		if k == nil {
			break // nothing left to evict; count and index disagree
		}
		if len(k) != recencyKeySize {
			if err := recency.Delete(k); err != nil {
				return evicted, err
			}
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		key := pkarrclient.PublicKey(k[8:])
		if err := recency.Delete(k); err != nil {
			return evicted, err
		}
		if cur, ok := readSeq(access, key); !ok || cur != seq {
			continue // stale index entry left by a repaired value
		}
		s.mu.Lock()
		pseq, used := s.pending[key]
		s.mu.Unlock()
		if used && pseq > seq {
			if err := access.Put(key[:], u64(pseq)); err != nil {
				return evicted, err
			}
			if err := recency.Put(recencyKey(pseq, key), nil); err != nil {
				return evicted, err
			}
			continue
		}
		if err := access.Delete(key[:]); err != nil {
			return evicted, err
		}
		if packets.Get(key[:]) != nil {
			if err := packets.Delete(key[:]); err != nil {
				return evicted, err
			}
			evicted++
		}
	}
	return evicted, nil
}

// Get implements Store. It does not write to the file: the use is noted in
// memory and written later by the flusher.
func (s *BoltStore) Get(ctx context.Context, key pkarrclient.PublicKey) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	if s.closed.Load() {
		return Record{}, ErrClosed
	}
	var rec Record
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPackets).Get(key[:])
		if v == nil {
			return ErrNotFound
		}
		var err error
		rec, err = decodeValue(v) // copies: v is only valid inside the transaction
		return err
	})
	if err != nil {
		return Record{}, s.storeError("get", key, err)
	}
	s.touch(key)
	return rec, nil
}

// touch notes a use of key for the flusher.
func (s *BoltStore) touch(key pkarrclient.PublicKey) {
	seq := s.seq.Add(1)
	s.mu.Lock()
	s.pending[key] = seq
	n := len(s.pending)
	s.mu.Unlock()
	if n >= pendingFlushThreshold {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// storeError maps bbolt's errors to this package's.
func (s *BoltStore) storeError(op string, key pkarrclient.PublicKey, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return ErrNotFound
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	}
	return fmt.Errorf("pkarrrelay: bolt %s %s: %w", op, key, err)
}

// Len implements Store in constant time.
func (s *BoltStore) Len() int { return int(s.count.Load()) }

// Close implements Store: it stops the flusher and the writer, writes the
// pending recency updates and closes the file. Operations in progress
// finish first.
func (s *BoltStore) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	<-s.done
	<-s.writerDone
	// Nothing else writes now: the last flush runs here, directly.
	flushErr := s.flushWith(func(fn func(*bolt.Tx) error) error {
		_, err := s.writeTxAt([]func(*bolt.Tx) error{fn})
		return err
	})
	if !s.wedged.Load() {
		return errors.Join(flushErr, s.db.Close())
	}
	// bbolt's Close waits for the writer lock, which a panic in a rollback
	// leaves held: give it a moment, then leave the file to the process's
	// end rather than hang the caller.
	closed := make(chan error, 1)
	go func() { closed <- s.db.Close() }()
	select {
	case err := <-closed:
		return errors.Join(flushErr, err)
	case <-time.After(wedgedCloseWait):
		return fmt.Errorf("%w: a write transaction could not be rolled back; the file stays open until the process ends", ErrDamaged)
	}
}

// wedgedCloseWait is how long Close waits for bbolt after a write
// transaction panicked.
const wedgedCloseWait = time.Second

// view runs a read transaction under guard.
func (s *BoltStore) view(fn func(*bolt.Tx) error) error {
	return guard(func() error { return s.db.View(fn) })
}

// update hands fn to the writer and waits for its batch's commit. Once
// handed over, the write completes whatever ctx does, since it may already
// be on disk.
func (s *BoltStore) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	req := &writeReq{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- req:
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.done
}

// writeLoop commits Puts and recency flushes in batches: the first of a
// batch waits up to the batch delay for others, those arriving during a
// commit make up the next batch, and one commit (one fsync) serves them
// all. It is the only goroutine that starts write transactions while the
// store is open.
func (s *BoltStore) writeLoop() {
	defer close(s.writerDone)
	for {
		var batch []*writeReq
		select {
		case r := <-s.writes:
			batch = append(batch, r)
		case <-s.stop:
			return
		}
		timer := time.NewTimer(s.cfg.batchDelay)
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-s.writes:
				batch = append(batch, r)
			case <-timer.C:
				break gather
			case <-s.stop:
				break gather
			}
		}
		timer.Stop()
		s.commit(batch)
	}
}

// commit runs batch in one transaction. When one member fails, or meets a
// damaged page, the transaction is rolled back, that member gets its error
// and the others are tried again without it; a failed commit fails all
// that were in it.
func (s *BoltStore) commit(batch []*writeReq) {
	for len(batch) > 0 {
		fns := make([]func(*bolt.Tx) error, len(batch))
		for i, r := range batch {
			fns[i] = r.fn
		}
		failed, err := s.writeTxAt(fns)
		if err == nil || failed < 0 {
			for _, r := range batch {
				r.done <- err
			}
			return
		}
		batch[failed].done <- err
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

// writeTxAt runs fns in one write transaction and commits it. When fns[i]
// fails or panics (a damaged page), it returns i and the error; when the
// transaction fails as a whole, -1. A panic inside bbolt's own rollback or
// commit wedges the store: later writes fail at once.
func (s *BoltStore) writeTxAt(fns []func(*bolt.Tx) error) (int, error) {
	if s.wedged.Load() {
		return -1, fmt.Errorf("%w: writes stopped after an earlier failure", ErrDamaged)
	}
	failed := -1
	var memberErr error
	err := guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			for i, fn := range fns {
				// Each member under guard of its own: its panic is its
				// error, and bbolt rolls back as for any error.
				if err := guard(func() error { return fn(tx) }); err != nil {
					failed, memberErr = i, err
					return err
				}
			}
			return nil
		})
	})
	if err != nil && err != memberErr {
		// The transaction failed as a whole. A panic (ErrDamaged is only
		// made by guard) came from bbolt's rollback or commit.
		failed = -1
		if errors.Is(err, ErrDamaged) {
			s.wedged.Store(true)
		}
	}
	return failed, err
}

func (s *BoltStore) flushLoop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		if err := s.flush(); err != nil && !errors.Is(err, ErrClosed) {
			s.cfg.logger.Warn("pkarrrelay: writing recency updates failed", "err", err)
		}
	}
}

// flush writes the pending recency updates in one transaction, through
// the writer.
func (s *BoltStore) flush() error {
	return s.flushWith(func(fn func(*bolt.Tx) error) error { return s.update(context.Background(), fn) })
}

// flushWith writes the pending recency updates with write.
func (s *BoltStore) flushWith(write func(func(*bolt.Tx) error) error) error {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	snapshot := maps.Clone(s.pending)
	s.mu.Unlock()
	if err := write(s.flushTx(snapshot)); err != nil {
		return fmt.Errorf("pkarrrelay: flushing recency: %w", err)
	}
	s.mu.Lock()
	for key, seq := range snapshot {
		if s.pending[key] == seq {
			delete(s.pending, key)
		}
	}
	s.mu.Unlock()
	return nil
}

// flushTx writes the recency updates in snapshot.
func (s *BoltStore) flushTx(snapshot map[pkarrclient.PublicKey]uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		packets := tx.Bucket(bucketPackets)
		access := tx.Bucket(bucketAccess)
		recency := tx.Bucket(bucketRecency)
		for key, seq := range snapshot {
			if packets.Get(key[:]) == nil {
				continue // evicted since it was read
			}
			old, ok := readSeq(access, key)
			if ok && old >= seq {
				continue // a later Put already moved it
			}
			if ok {
				if err := recency.Delete(recencyKey(old, key)); err != nil {
					return err
				}
			}
			if err := access.Put(key[:], u64(seq)); err != nil {
				return err
			}
			if err := recency.Put(recencyKey(seq, key), nil); err != nil {
				return err
			}
		}
		return nil
	}
}

// encodeValue lays out a packet value: format (1) | stored, Unix ns (8) |
// min TTL (4) | relay payload.
func encodeValue(rec *Record) []byte {
	v := make([]byte, valueHeaderSize+len(rec.Payload))
	v[0] = valueFormat
	binary.BigEndian.PutUint64(v[1:], uint64(rec.Stored.UnixNano()))
	binary.BigEndian.PutUint32(v[9:], rec.TTL)
	copy(v[valueHeaderSize:], rec.Payload)
	return v
}

// decodeValue is the inverse of encodeValue. It copies the payload and
// checks every length, because the bytes come from a file that may have been
// damaged.
func decodeValue(v []byte) (Record, error) {
	if len(v) < valueHeaderSize {
		return Record{}, fmt.Errorf("%w: value of %d bytes", ErrCorrupt, len(v))
	}
	if v[0] != valueFormat {
		return Record{}, fmt.Errorf("%w: value format %d", ErrCorrupt, v[0])
	}
	payload := v[valueHeaderSize:]
	ts, err := checkPayload(payload)
	if err != nil {
		return Record{}, err
	}
	return Record{
		Payload:   append([]byte(nil), payload...),
		Timestamp: ts,
		TTL:       binary.BigEndian.Uint32(v[9:]),
		Stored:    time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))),
	}, nil
}

func recencyKey(seq uint64, key pkarrclient.PublicKey) []byte {
	k := make([]byte, recencyKeySize)
	binary.BigEndian.PutUint64(k, seq)
	copy(k[8:], key[:])
	return k
}

func readSeq(access *bolt.Bucket, key pkarrclient.PublicKey) (uint64, bool) {
	v := access.Get(key[:])
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func readCount(meta *bolt.Bucket) (uint64, bool) {
	v := meta.Get(metaCount)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
