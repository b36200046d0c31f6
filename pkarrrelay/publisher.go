package pkarrrelay

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// publisher forwards stored packets to the upstream in the background, so
// that a PUT answers once its packet is stored and the publish runs on a
// budget of its own: a fixed number of workers, each call under its own
// timeout, failed calls tried again after a growing pause.
//
// It holds at most one job per key, with the newest packet it was given for
// that key: a packet that arrives while the key's job waits replaces the
// one waiting (an identical republish joins it); one that arrives while
// the job runs is published right after it. So a flood of PUTs for one key
// costs one publish at a time, and the memory held is bounded by the
// number of keys, which is capped: past maxKeys, a packet for a key with no
// job is dropped (it stays stored; its owner republishes within the hour,
// as pkarr clients do).
type publisher struct {
	backend pkarrclient.Backend
	clock   clockwork.Clock
	timeout time.Duration
	retries int
	backoff time.Duration
	maxKeys int
	// acquire takes a unit of the upstream budget, waiting for one; it
	// returns the function that gives it back. Nil means no budget.
	acquire func(context.Context) (func(), error)
	// report is told the end of every call: final is false when the call
	// failed and will be tried again.
	report func(p *pkarrclient.SignedPacket, attempt int, receipt pkarrclient.PublishReceipt, err error, final bool)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	wake   *sync.Cond
	closed bool
	jobs   map[pkarrclient.PublicKey]*pubJob
	ready  []pkarrclient.PublicKey // keys whose job may run now, oldest first
}

// pubJob is the pending publish of one key.
type pubJob struct {
	p       *pkarrclient.SignedPacket // the newest packet to publish
	attempt int                       // calls already made for p
	queued  bool                      // in ready
	running bool
	again   bool            // a packet came while running
	retry   clockwork.Timer // set while waiting to be tried again
}

// enqueueResult says what enqueue did with a packet.
type enqueueResult int

const (
	enqueued  enqueueResult = iota // a new job
	coalesced                      // joined or replaced the key's job
	dropped                        // no room for another key
	refused                        // the publisher is closed
)

// Defaults of the background publish (see WithPublishQueue,
// WithPublishRetries and WithPublishTimeout).
const (
	// DefaultPublishWorkers is how many publishes run at once. They also
	// take units of the upstream budget, whose 32 calls in flight they
	// leave mostly to lookups, which have a client waiting.
	DefaultPublishWorkers = 8
	// DefaultPublishQueue is how many keys may wait for a publish. At 8
	// workers and a few seconds a publish, it is minutes of work; past it,
	// packets for further keys are stored but not published.
	DefaultPublishQueue = 10_000
	// DefaultPublishRetries and DefaultPublishBackoff: a failed publish is
	// tried again after 5, 10, 20 and 40 s, for about 75 s in all: past a
	// DHT node's restart or a congested minute, well before the owner's
	// hourly republish.
	DefaultPublishRetries = 4
	DefaultPublishBackoff = 5 * time.Second
	// DefaultPublishTimeout bounds one publish call. Nobody waits for it,
	// so it can outlast a lookup's; the DHT client bounds its own calls at
	// 10 s, and one relay upstream answers in 2.
	DefaultPublishTimeout = 30 * time.Second
)

// publisherConfig is what newPublisher needs; see publisher's fields.
type publisherConfig struct {
	backend          pkarrclient.Backend
	clock            clockwork.Clock
	workers, maxKeys int
	retries          int
	backoff, timeout time.Duration
	acquire          func(context.Context) (func(), error)
	report           func(p *pkarrclient.SignedPacket, attempt int, receipt pkarrclient.PublishReceipt, err error, final bool)
}

// newPublisher starts the workers; close stops them.
func newPublisher(c publisherConfig) *publisher {
	pb := &publisher{
		backend: c.backend,
		clock:   c.clock,
		timeout: c.timeout,
		retries: c.retries,
		backoff: c.backoff,
		maxKeys: c.maxKeys,
		acquire: c.acquire,
		report:  c.report,
		jobs:    make(map[pkarrclient.PublicKey]*pubJob),
	}
	pb.wake = sync.NewCond(&pb.mu)
	pb.ctx, pb.cancel = context.WithCancel(context.Background())
	pb.wg.Add(c.workers)
	for range c.workers {
		go pb.work()
	}
	return pb
}

// enqueue schedules a publish of p. It never waits.
func (pb *publisher) enqueue(p *pkarrclient.SignedPacket) enqueueResult {
	key := p.PublicKey()
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if pb.closed {
		return refused
	}
	j := pb.jobs[key]
	if j == nil {
		if len(pb.jobs) >= pb.maxKeys {
			return dropped
		}
		j = &pubJob{p: p}
		pb.jobs[key] = j
		pb.readyLocked(key, j)
		return enqueued
	}
	if j.p.MoreRecentThan(p) {
		return coalesced // the job already carries something newer
	}
	if !p.Equal(j.p) {
		j.p, j.attempt = p, 0
	}
	switch {
	case j.running:
		j.again = true // after the call in flight, for the newest packet
	case j.retry != nil:
		// A new packet, or a republish, need not wait out the pause.
		j.retry.Stop()
		j.retry = nil
		j.attempt = 0
		pb.readyLocked(key, j)
	}
	return coalesced
}

func (pb *publisher) readyLocked(key pkarrclient.PublicKey, j *pubJob) {
	if !j.queued {
		j.queued = true
		pb.ready = append(pb.ready, key)
		pb.wake.Signal()
	}
}

// work runs jobs until the publisher closes.
func (pb *publisher) work() {
	defer pb.wg.Done()
	for {
		pb.mu.Lock()
		for len(pb.ready) == 0 && !pb.closed {
			pb.wake.Wait()
		}
		if pb.closed {
			pb.mu.Unlock()
			return
		}
		key := pb.ready[0]
		pb.ready[0] = pkarrclient.PublicKey{}
		pb.ready = pb.ready[1:]
		j := pb.jobs[key]
		j.queued, j.running, j.again = false, true, false
		p, attempt := j.p, j.attempt+1
		pb.mu.Unlock()

		receipt, err := pb.call(p)
		pb.finish(key, j, p, attempt, receipt, err)
	}
}

// call makes one publish under the budget and the timeout.
func (pb *publisher) call(p *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	if pb.acquire != nil {
		release, err := pb.acquire(pb.ctx)
		if err != nil {
			return pkarrclient.PublishReceipt{}, err
		}
		defer release()
	}
	ctx, cancel := context.WithTimeout(pb.ctx, pb.timeout)
	defer cancel()
	return pb.backend.Publish(ctx, p)
}

// finish settles a call: the job ends, or runs again for a newer packet,
// or waits to be tried again.
func (pb *publisher) finish(key pkarrclient.PublicKey, j *pubJob, p *pkarrclient.SignedPacket, attempt int,
	receipt pkarrclient.PublishReceipt, err error) {
	final := err == nil || !retryable(err) || attempt > pb.retries
	pb.mu.Lock()
	j.running = false
	switch {
	case pb.closed:
		final = true
	case j.again:
		// A newer packet (or a republish) came during the call: publish
		// it now, whatever became of this one.
		j.attempt = 0
		pb.readyLocked(key, j)
	case !final:
		j.attempt = attempt
		pause := pb.backoff << (attempt - 1)
		j.retry = pb.clock.AfterFunc(pause, func() {
			pb.mu.Lock()
			defer pb.mu.Unlock()
			if pb.jobs[key] == j && j.retry != nil && !pb.closed {
				j.retry = nil
				pb.readyLocked(key, j)
			}
		})
	default:
		delete(pb.jobs, key)
	}
	pb.mu.Unlock()
	if pb.report != nil {
		pb.report(p, attempt, receipt, err, final)
	}
}

// retryable reports whether another try could succeed: not when the
// upstream holds something newer or refuses the packet itself, nor when
// the publisher is closing.
func retryable(err error) bool {
	return !errors.Is(err, pkarrclient.ErrNotMostRecent) &&
		!errors.Is(err, pkarrclient.ErrPacketTooLarge) &&
		!errors.Is(err, pkarrclient.ErrBadRequest) &&
		!errors.Is(err, context.Canceled)
}

// pending returns how many keys wait for or are in a publish.
func (pb *publisher) pending() int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return len(pb.jobs)
}

// close stops the workers, cancels the calls in flight and drops the jobs
// still waiting; it returns how many it dropped. It waits for the workers.
func (pb *publisher) close() int {
	pb.mu.Lock()
	if pb.closed {
		pb.mu.Unlock()
		return 0
	}
	pb.closed = true
	waiting := 0
	for _, j := range pb.jobs {
		if j.retry != nil {
			j.retry.Stop()
			j.retry = nil
		}
		if !j.running {
			waiting++
		}
	}
	pb.ready = nil
	pb.wake.Broadcast()
	pb.mu.Unlock()
	pb.cancel()
	pb.wg.Wait()
	pb.mu.Lock()
	clear(pb.jobs)
	pb.mu.Unlock()
	return waiting
}
