package mdnsdiscovery

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/zeroconf/v2"

	"github.com/phrasemeet/discovery"
)

// Announce implements discovery.Discoverer. It returns once the record
// is registered with zeroconf, which then probes and announces it; the
// browse restart it asks for makes others hear it within about a second
// at most. The announcement seals its record afresh and registers it
// again every re-announce period until ctx ends, Leave is called or the
// Discoverer is closed.
//
// A record whose ID is a public key (see WithIDSchemes) is announced only
// if the WithSigner signer holds that key: otherwise Announce fails at
// once with an error wrapping discovery.ErrNoKey.
func (d *Discoverer) Announce(ctx context.Context, rec discovery.Record) (discovery.Announcement, error) {
	if err := d.checkRecord(rec); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	a := &announcement{
		d:       d,
		ctx:     actx,
		cancel:  cancel,
		rec:     rec.Clone(),
		started: make(chan error, 1),
		update:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		endDone: make(chan struct{}),
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		cancel()
		return nil, errClosedf("announce")
	}
	if old := d.anns[rec.ID]; old != nil {
		if old.ctx.Err() == nil {
			d.mu.Unlock()
			cancel()
			return nil, fmt.Errorf("%w: %q", discovery.ErrAlreadyAnnounced, rec.ID)
		}
		// Its context has ended, so it has ended for its caller, whether
		// or not its AfterFunc has run yet: the ID is free.
		old.markEndedLocked()
	}
	d.anns[rec.ID] = a
	// A peer we knew under this ID is one we announce ourselves now, and a
	// Discoverer never reports its own record.
	if ps := d.peers[rec.ID]; ps != nil {
		if ps.reported {
			d.tracker.Remove(rec.ID)
		}
		delete(d.peers, rec.ID)
	}
	a.seq = d.nextSeqLocked(rec.ID)
	first := a.wireLocked(kindLive)
	d.wg.Add(1)
	d.mu.Unlock()
	// The announcement's goroutine makes the first registration too, so
	// that an end racing with this Announce (Close) always finds a
	// goroutine to wait for.
	go a.run(first)
	if err := <-a.started; err != nil {
		cancel()
		<-a.done
		d.mu.Lock()
		// Never registered, so there is nothing to tear down.
		if !a.ended {
			a.ended = true
			delete(d.anns, rec.ID)
		} else if !a.tearing {
			delete(d.ending, a)
		}
		d.mu.Unlock()
		return nil, fmt.Errorf("mdnsdiscovery: registering the service: %w", err)
	}
	// From here on, whoever ends the announcement tears it down: this
	// AfterFunc, Leave or Close.
	stop := context.AfterFunc(actx, func() { a.end(context.Background()) })
	d.mu.Lock()
	a.stopAfter = stop
	ended := a.ended
	d.mu.Unlock()
	if ended {
		// Close, or the caller's context, ended it while it registered.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, errClosedf("closed while announcing")
	}
	d.kickBrowse()
	return a, nil
}

// checkRecord refuses a record that cannot be announced: no ID, an ID
// that is a key we cannot sign for (ErrNoKey, or ErrBadProof when the
// signer's proof does not verify), or too large for one mDNS packet with
// its proof.
func (d *Discoverer) checkRecord(rec discovery.Record) error {
	w := wireRecord{kind: kindLive, rec: rec, time: time.UnixMicro(0)}
	if err := d.sign(&w); err != nil {
		return err
	}
	body, err := w.encodeBody()
	if err != nil {
		return err
	}
	if err := discovery.CheckProof(d.cfg.schemes, rec.ID, d.sealer.proofMessage(body), w.proof); err != nil {
		return fmt.Errorf("mdnsdiscovery: cannot announce %q: the signer's proof does not verify: %w", rec.ID, err)
	}
	if _, err := w.encode(); err != nil {
		return err
	}
	if len(w.proof) > 0 && len(body)+uvarintLen(uint64(len(w.proof)))+len(w.proof)+proofSlack > maxPlain {
		return fmt.Errorf("%w: with its proof", ErrRecordTooLarge)
	}
	return nil
}

// proofSlack is room kept, when Announce checks that a record fits, for
// signatures whose length varies from one signing to the next (DER
// ECDSA), so a record accepted once never fails to seal later.
const proofSlack = 8

// sign sets w's proof: a signature by the key w's ID names, when a
// scheme owns the ID; none otherwise.
func (d *Discoverer) sign(w *wireRecord) error {
	w.proof = nil
	body, err := w.encodeBody()
	if err != nil {
		return err
	}
	proof, err := discovery.Prove(d.cfg.schemes, d.cfg.signer, w.rec.ID, d.sealer.proofMessage(body))
	if err != nil {
		return fmt.Errorf("mdnsdiscovery: cannot announce %q: %w", w.rec.ID, err)
	}
	w.proof = proof
	return nil
}

// announcement is one running Announce.
type announcement struct {
	d       *Discoverer
	ctx     context.Context // ends with Leave, the caller's context, or Close
	cancel  context.CancelFunc
	started chan error    // the first registration's result
	update  chan struct{} // the record changed: register it now
	done    chan struct{} // closed when run returns
	endDone chan struct{} // closed when end has finished

	// server is the live registration. run owns it while running, end
	// after run has returned.
	server *zeroconf.Server

	// Guarded by d.mu.
	rec       discovery.Record
	seq       uint64
	sealed    time.Time   // the last sealing time used
	ended     bool        // over for the caller: the ID is free, Update fails
	tearing   bool        // end's teardown has begun
	stopAfter func() bool // stops the context.AfterFunc that ends us
}

// Record implements discovery.Announcement.
func (a *announcement) Record() discovery.Record {
	a.d.mu.Lock()
	defer a.d.mu.Unlock()
	return a.rec.Clone()
}

// Update implements discovery.Announcement. The new record is registered
// under a new version number at once, by the announcement's goroutine,
// and a browse restart makes others hear it within about a second; a
// failed registration is retried every second.
func (a *announcement) Update(_ context.Context, rec discovery.Record) error {
	if err := a.d.checkRecord(rec); err != nil {
		return err
	}
	d := a.d
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case a.ended:
		return discovery.ErrLeft
	case rec.ID != a.rec.ID:
		return fmt.Errorf("%w: Update cannot change the ID (%q to %q)", discovery.ErrInvalidRecord, a.rec.ID, rec.ID)
	case rec.Equal(a.rec):
		return nil // nothing to tell
	}
	a.rec = rec.Clone()
	a.seq = d.nextSeqLocked(rec.ID)
	select {
	case a.update <- struct{}{}:
	default:
	}
	return nil
}

// Leave implements discovery.Announcement: the record is withdrawn and a
// sealed tombstone registered in its place, which others hearing it
// report as Lost. Leave returns when the tombstone has been up for the
// leave linger, or when ctx ends.
func (a *announcement) Leave(ctx context.Context) error {
	a.end(ctx)
	return nil
}

// wireLocked is the announcement's record as it goes on the wire now, of
// the given kind. The sealing time grows strictly, so every copy orders
// after the one before even if the clock stands still or steps back.
func (a *announcement) wireLocked(k kind) wireRecord {
	t := time.UnixMicro(a.d.now().UnixMicro())
	if !t.After(a.sealed) {
		t = a.sealed.Add(time.Microsecond)
	}
	a.sealed = t
	rec := a.rec.Clone()
	if k == kindGone {
		rec = discovery.Record{ID: rec.ID}
	}
	return wireRecord{kind: k, origin: a.d.origin, seq: a.seq, time: t, rec: rec}
}

// run registers the first record, then registers it afresh every
// re-announce period and at once on Update, each time under a new
// instance name, withdrawing the one before.
func (a *announcement) run(first wireRecord) {
	d := a.d
	defer d.wg.Done()
	defer close(a.done)
	srv, err := d.register(first)
	a.started <- err
	if err != nil {
		return
	}
	a.server = srv
	retry, kick := false, false
	for {
		wait := jitter(d.cfg.reannounce, 0.1)
		if retry {
			wait = min(wait, time.Second)
		}
		t := d.cfg.clock.NewTimer(wait)
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-t.Chan():
		case <-a.update:
			kick = true
		}
		t.Stop()
		d.mu.Lock()
		if a.ended {
			d.mu.Unlock()
			return // the tombstone's version is set; no live copy may carry it
		}
		w := a.wireLocked(kindLive)
		d.mu.Unlock()
		next, err := d.register(w)
		if err != nil {
			// The registration before stays up meanwhile: readers still
			// hear it, and age it out only after the stale bound.
			d.cfg.logger.Warn("mdns re-registration failed", "err", err)
			retry = true
			continue
		}
		retry = false
		// The new registration first, then the old one's goodbye, so the
		// peer is never unregistered in between. zeroconf's browsers
		// ignore goodbyes; other mDNS caches drop the old instance.
		a.server.Shutdown()
		a.server = next
		if kick {
			d.kickBrowse()
			kick = false
		}
	}
}

// markEndedLocked ends the announcement for its caller, once: its ID is
// free for a new Announce at once, Update fails with ErrLeft, and its
// tombstone gets its version number now, so any later announcement of
// the ID, which takes a higher one, outranks the tombstone everywhere.
// The teardown (end) may still be lingering; Close waits for it.
func (a *announcement) markEndedLocked() {
	if a.ended {
		return
	}
	d := a.d
	a.ended = true
	if d.anns[a.rec.ID] == a {
		delete(d.anns, a.rec.ID)
	}
	d.ending[a] = struct{}{}
	a.seq = d.nextSeqLocked(a.rec.ID)
}

// end stops the announcement, once: the live registration is replaced by
// a tombstone (a newer version, so it wins over every live copy), a
// browse restart makes every browser hear it, and after the linger (or
// when ctx ends) the tombstone is withdrawn. Every caller returns when
// that is done or its own ctx ends.
func (a *announcement) end(ctx context.Context) {
	d := a.d
	d.mu.Lock()
	a.markEndedLocked()
	first := !a.tearing
	a.tearing = true
	stop := a.stopAfter
	d.mu.Unlock()
	if !first {
		select {
		case <-a.endDone:
		case <-ctx.Done():
		}
		return
	}
	defer close(a.endDone)
	defer func() {
		d.mu.Lock()
		delete(d.ending, a)
		d.mu.Unlock()
	}()
	if stop != nil {
		stop()
	}
	a.cancel()
	<-a.done
	if a.server == nil {
		return // never registered, so never heard of
	}
	d.mu.Lock()
	tomb := a.wireLocked(kindGone)
	d.mu.Unlock()
	ts, err := d.register(tomb)
	a.server.Shutdown()
	a.server = nil
	if err != nil {
		d.cfg.logger.Warn("mdns tombstone not registered; others will notice the leave only after the stale bound", "err", err)
		return
	}
	d.kickBrowse()
	t := d.cfg.clock.NewTimer(d.cfg.linger)
	select {
	case <-t.Chan():
	case <-ctx.Done():
	}
	t.Stop()
	ts.Shutdown()
}
