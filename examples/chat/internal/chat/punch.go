package chat

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// HolePunches is how the host's hole-punching service tells the chat that
// a direct link came from a hole punch: go-libp2p has no host event for
// it, only a tracer. The host constructor connects it by taking the
// *HolePunches the chat's fx graph provides and passing it on to the
// connectivity.Manager, which owns the host's one tracer:
//
//	connectivity.New(connectivity.WithHolePunchTracer(punches), ...)
//
// The Monitor reads it: a link that turns direct while a punch is under
// way is reported when the punch ends, "hole punched" if it worked, and
// /peers says "direct (hole punched)" while that peer stays connected.
// Without the tracer (a host built without hole punching) nothing is ever
// reported as punched. Trace may be called from any goroutine.
type HolePunches struct {
	mu     sync.Mutex
	by     map[peer.ID]*punchState
	notify func(peer.ID) // the monitor's; nil until it watches
}

// punchState is what the tracer said about one peer since it last
// disconnected.
type punchState struct {
	active    bool          // a punch started and has not ended
	successes int           // punches that worked
	took      time.Duration // how long the last one that worked took
	failure   string        // why the last one failed, if it did
}

func newHolePunches() *HolePunches { return &HolePunches{by: make(map[peer.ID]*punchState)} }

// Trace implements holepunch.EventTracer: StartHolePunch and EndHolePunch
// events count, the others (DirectDial, HolePunchAttempt, ProtocolError)
// say nothing about how a link came.
func (p *HolePunches) Trace(e *holepunch.Event) {
	if p == nil || e == nil || e.Remote == "" {
		return
	}
	p.mu.Lock()
	st := p.by[e.Remote]
	switch e.Type {
	case holepunch.StartHolePunchEvtT:
		if st == nil {
			st = new(punchState)
			p.by[e.Remote] = st
		}
		st.active = true
	case holepunch.EndHolePunchEvtT:
		end, ok := e.Evt.(*holepunch.EndHolePunchEvt)
		if !ok {
			p.mu.Unlock()
			return
		}
		if st == nil {
			st = new(punchState)
			p.by[e.Remote] = st
		}
		st.active = false
		if end.Success {
			st.successes++
			st.took, st.failure = end.EllapsedTime, ""
		} else {
			st.failure = oneLine(end.Error)
			if st.failure == "" {
				st.failure = "no reason given"
			}
		}
	default:
		p.mu.Unlock()
		return
	}
	notify := p.notify
	p.mu.Unlock()
	if notify != nil {
		notify(e.Remote)
	}
}

// watch makes f hear of every peer whose punch state changes.
func (p *HolePunches) watch(f func(peer.ID)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notify = f
}

// get returns what is known of the punches to id.
func (p *HolePunches) get(id peer.ID) punchState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.by[id]; st != nil {
		return *st
	}
	return punchState{}
}

// forget drops id once it has no connection left: a later direct link is
// a new one, punched or not. It also bounds the map by the peers
// connected.
func (p *HolePunches) forget(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.by, id)
}
