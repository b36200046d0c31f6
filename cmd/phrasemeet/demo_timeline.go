package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// demoEvent is one step of the demo's timeline: a line of text, or with
// --json one JSON object per line. Fields that do not apply to an event
// are left out.
type demoEvent struct {
	// Event is the kind: relay, passphrase, kdf, host, announcing,
	// announce, discover, found_all, connect, dial_failed, mesh, message,
	// deliver, waiting, no_slot, summary.
	Event string `json:"event"`
	// T is when it happened, in milliseconds since the demo started.
	T float64 `json:"t_ms"`
	// Peer is the host it happened to (1 to --peers), Other the host it
	// is about (found, dialed, heard from).
	Peer  int `json:"peer,omitempty"`
	Other int `json:"other,omitempty"`
	// Slot is the slot an announcement holds (announce).
	Slot *int `json:"slot,omitempty"`
	// Duration is what the step took, in milliseconds: the KDF (kdf), the
	// time from the first announce to everyone found everyone
	// (found_all), to a full mesh (mesh, and summary: the same as
	// MeshMS), a message's latency (deliver).
	Duration float64  `json:"duration_ms,omitempty"`
	ID       string   `json:"id,omitempty"`
	URL      string   `json:"url,omitempty"`
	Addrs    []string `json:"addrs,omitempty"`
	Via      string   `json:"via,omitempty"`
	// Link is how a connection goes (connect): direct or relayed.
	Link    string `json:"link,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Error   string `json:"error,omitempty"`
	Text    string `json:"text,omitempty"`
	Topic   string `json:"topic,omitempty"`
	Profile string `json:"profile,omitempty"`

	// Summary fields.
	Peers       int   `json:"peers,omitempty"`
	Connections int   `json:"connections,omitempty"`
	FullMesh    *bool `json:"full_mesh,omitempty"`
	// MeshMS is the time from the first announce to the full mesh (every
	// pair of hosts connected, whoever dialed), in milliseconds.
	MeshMS float64 `json:"mesh_ms,omitempty"`
	// FoundAll says whether everyone found everyone: every host's
	// discovery reported every other host (discovery events, not
	// connections); FoundAllMS is when, from the first announce.
	FoundAll   *bool   `json:"found_all,omitempty"`
	FoundAllMS float64 `json:"found_all_ms,omitempty"`
	// Found counts the discoveries reported, (host, other) pairs, out of
	// Peers×(Peers-1) (found_all, waiting, summary); NotFound lists the
	// pairs [host, other] still missing (waiting, summary).
	Found     int      `json:"found,omitempty"`
	NotFound  [][2]int `json:"not_found,omitempty"`
	Delivered *int     `json:"delivered,omitempty"`
	KDF       float64  `json:"kdf_ms,omitempty"`
	// NoSlot lists the hosts holding no confirmed slot at the end.
	NoSlot []int `json:"no_slot,omitempty"`
	// Line is the event in words, as the text output prints it.
	Line string `json:"-"`
}

// timeline prints the demo's events as they happen.
type timeline struct {
	w     io.Writer
	json  *json.Encoder
	start time.Time
}

func newTimeline(w io.Writer, asJSON bool, start time.Time) *timeline {
	t := &timeline{w: w, start: start}
	if asJSON {
		t.json = newJSONEncoder(w)
	}
	return t
}

// emit stamps e with the time since the start and prints it.
func (t *timeline) emit(e demoEvent) {
	e.T = ms(time.Since(t.start))
	if t.json != nil {
		t.json.Encode(e)
		return
	}
	fmt.Fprintf(t.w, "[%9.1fms] %s\n", e.T, e.Line)
}

// ms is a duration in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// seconds shows a duration as a person reads it: "132ms", "1.37s".
func seconds(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
