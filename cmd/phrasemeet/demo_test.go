package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// demoJSON runs the demo in process with a known passphrase and --json,
// and returns its events in order.
func demoJSON(t *testing.T, cfg demoConfig) ([]demoEvent, string) {
	t.Helper()
	const pass = "demo test passphrase, not random"
	cfg.passphrase = []byte(pass)
	cfg.json, cfg.listen = true, "127.0.0.1:0"
	if cfg.timeout == 0 {
		cfg.timeout = 90 * time.Second
	}
	e, out, errb := testEnv(t, nil, nil)
	if err := runDemoWith(context.Background(), e, cfg); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, errb)
	}
	if strings.Contains(out.String()+errb.String(), pass) {
		t.Fatalf("the demo printed its passphrase:\n%s", out)
	}
	return parseDemoEvents(t, out.String()), out.String()
}

// parseDemoEvents reads the demo's --json output, one event a line.
func parseDemoEvents(t *testing.T, out string) []demoEvent {
	t.Helper()
	var events []demoEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e demoEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", line, err)
		}
		events = append(events, e)
	}
	return events
}

// checkTimeline checks that every stage of the demo appears for every host,
// in an order that makes sense, and that the summary reports a full mesh.
// With allowNoSlot, a host may end holding no slot (can-sync's claim race)
// if the demo says so.
func checkTimeline(t *testing.T, events []demoEvent, peers int, out string, allowNoSlot bool) {
	t.Helper()
	first := make(map[string]int) // event kind to index of its first occurrence
	hosts := make(map[int]bool)
	announced := make(map[int]bool)
	delivered := make(map[int]bool)
	noSlot := make(map[int]bool)
	pairs := make(map[[2]int]bool)
	found := make(map[[2]int]bool) // (finder, found) pairs, as the hosts' discovery reported them
	discoveries := 0
	for i, e := range events {
		if _, ok := first[e.Event]; !ok {
			first[e.Event] = i
		}
		if i > 0 && e.T < events[i-1].T {
			t.Errorf("event %d (%s) at %vms, before the previous one at %vms", i, e.Event, e.T, events[i-1].T)
		}
		switch e.Event {
		case "host":
			hosts[e.Peer] = e.ID != "" && len(e.Addrs) > 0
		case "announce":
			if e.Slot == nil || *e.Slot < 0 {
				t.Errorf("announce without a slot: %+v", e)
			}
			announced[e.Peer] = true
		case "discover":
			if e.Peer == e.Other || e.Other < 1 || e.Other > peers || e.Via == "" {
				t.Errorf("odd discovery: %+v", e)
			}
			found[[2]int{e.Peer, e.Other}] = true
			discoveries++
		case "found_all":
			// Everyone found everyone: no discovery may be missing here,
			// none may come after it (it is declared once, when the last
			// one came).
			if want := peers * (peers - 1); len(found) != want {
				t.Errorf("found_all after %d of %d discoveries:\n%s", len(found), want, out)
			}
		case "connect":
			pairs[[2]int{min(e.Peer, e.Other), max(e.Peer, e.Other)}] = true
		case "no_slot":
			noSlot[e.Peer] = true
		case "deliver":
			if e.Other != 1 || e.Text != "hello from host 1" {
				t.Errorf("odd delivery: %+v", e)
			}
			delivered[e.Peer] = true
		}
	}
	for _, kind := range []string{"relay", "passphrase", "kdf", "host", "announcing", "announce", "discover", "found_all", "connect", "mesh", "message", "deliver", "summary"} {
		if kind == "announce" && allowNoSlot && len(noSlot) == peers {
			continue
		}
		if _, ok := first[kind]; !ok {
			t.Errorf("no %q event in the timeline:\n%s", kind, out)
		}
	}
	// Not discover before connect: a pair is connected once either host
	// dialed, and --relayed's AutoRelay connects to host 1 as soon as the
	// adapter lists it, which may be reported before the demo's own
	// subscription reports the discovery.
	for _, order := range [][2]string{{"relay", "kdf"}, {"kdf", "host"}, {"host", "announcing"}, {"announcing", "discover"},
		{"announcing", "connect"}, {"connect", "mesh"}, {"mesh", "message"}, {"message", "deliver"},
		{"discover", "found_all"}, {"found_all", "summary"}, {"mesh", "summary"}} {
		if first[order[0]] > first[order[1]] {
			t.Errorf("%s comes before %s:\n%s", order[1], order[0], out)
		}
	}
	for n := 1; n <= peers; n++ {
		if !hosts[n] || !announced[n] && !(allowNoSlot && noSlot[n]) {
			t.Errorf("host %d: started %v, announced %v, reported without a slot %v", n, hosts[n], announced[n], noSlot[n])
		}
		if n > 1 && !delivered[n] {
			t.Errorf("host %d never received the message", n)
		}
	}
	if want := peers * (peers - 1) / 2; len(pairs) != want {
		t.Errorf("%d host pairs connected, want %d", len(pairs), want)
	}
	// The demo waits for every host's discovery to report every other
	// host, even where the pair connected earlier through the other's
	// dial: a connection says nothing of whether discovery works both ways.
	for a := 1; a <= peers; a++ {
		for b := 1; b <= peers; b++ {
			if a != b && !found[[2]int{a, b}] {
				t.Errorf("the demo ended before host %d's discovery found host %d:\n%s", a, b, out)
			}
		}
	}
	if discoveries < peers-1 {
		t.Errorf("%d discoveries for %d hosts", discoveries, peers)
	}
	last := events[len(events)-1]
	if len(last.NoSlot) != len(noSlot) {
		t.Errorf("summary lists %v without a slot, the timeline %v", last.NoSlot, noSlot)
	}
	if last.Event != "summary" || last.FullMesh == nil || !*last.FullMesh || last.Peers != peers ||
		last.Connections != peers*(peers-1)/2 || last.Delivered == nil || *last.Delivered != peers-1 || last.Duration <= 0 ||
		last.MeshMS != last.Duration {
		t.Errorf("last event is not a summary of a full mesh of %d hosts: %+v", peers, last)
	}
	if last.FoundAll == nil || !*last.FoundAll || last.FoundAllMS <= 0 || last.Found != peers*(peers-1) || len(last.NotFound) > 0 {
		t.Errorf("last event is not a summary where everyone found everyone: %+v", last)
	}
}

// TestDemoTimeline runs the default profile (Argon2id, the slot
// rendezvous with its default schedule) with three hosts.
func TestDemoTimeline(t *testing.T) {
	events, out := demoJSON(t, demoConfig{peers: 3, profile: profileDefault})
	checkTimeline(t, events, 3, out, false)
	for _, e := range events {
		if e.Event == "kdf" && (e.Duration <= 0 || e.Profile != "default") {
			t.Errorf("kdf event without its duration: %+v", e)
		}
	}
}

// TestDemoTimelineCanSync runs can-sync's profile: no KDF, eight slots of
// one ID each, addresses from the demo's address book.
func TestDemoTimelineCanSync(t *testing.T) {
	events, out := demoJSON(t, demoConfig{peers: 2, profile: profileCanSync})
	checkTimeline(t, events, 2, out, true)
	for _, e := range events {
		if e.Event == "discover" && e.Via != "can-sync" {
			t.Errorf("found through %q, want can-sync", e.Via)
		}
	}
}

// TestProcessesDemo runs `phrasemeet demo` as a user does and reads its
// text timeline.
func TestProcessesDemo(t *testing.T) {
	code, stdout, stderr := cli(t, nil, "demo", "--peers", "2")
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, want := range []string{
		"relay serving http://127.0.0.1:", "KDF: Argon2id t=3 m=64MiB p=4 took ", "host 1 is 12D3KooW", "host 2 is 12D3KooW",
		"host 1 announced in slot ", "host 2 announced in slot ", " via slots", "connected to host ",
		"full mesh: every one of the 2 hosts is connected to every other", `host 2 received "hello from host 1" from host 1`,
		"everyone found everyone: each of the 2 hosts' discovery reported every other host",
		"summary: 2 hosts: everyone found everyone (2 discoveries) ", "; full mesh (1 connection) ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if !strings.Contains(lines[len(lines)-1], "summary: 2 hosts: everyone found everyone") {
		t.Errorf("the last line is not the summary:\n%s", stdout)
	}
}

// TestProcessesDemoRelayed runs `phrasemeet demo --relayed` as a process
// (it makes 127.0.0.1 public to go-multiaddr, which is process-wide):
// hosts 2 and 3 accept no inbound connection but through a relay, so
// they can only meet through host 1's group relay, and still get the
// message.
func TestProcessesDemoRelayed(t *testing.T) {
	code, stdout, stderr := cli(t, nil, "demo", "--peers", "3", "--relayed", "--json", "--timeout", "40s")
	if code != 0 {
		t.Fatalf("demo --relayed exit %d: %s\n%s", code, stderr, stdout)
	}
	events := parseDemoEvents(t, stdout)
	checkTimeline(t, events, 3, stdout, false)
	for _, e := range events {
		if e.Event != "connect" {
			continue
		}
		if e.Link != "direct" && e.Link != "relayed" {
			t.Errorf("connect event without its link: %+v", e)
		}
		if min(e.Peer, e.Other) == 2 && max(e.Peer, e.Other) == 3 && e.Link != "relayed" {
			t.Errorf("hosts 2 and 3, both behind NAT, connected %s, want relayed", e.Link)
		}
	}
}

// TestDemoWaitsForEveryDiscovery holds back host 1's discovery (what its
// connector dials and what the demo reports) until the demo says it waits
// for discovery alone: hosts 2 and 3 find host 1 and dial it, so the mesh
// is full and the message delivered while host 1 has found no one. The
// demo must not end there, but wait until host 1's discovery reports
// hosts 2 and 3, and report both times.
func TestDemoWaitsForEveryDiscovery(t *testing.T) {
	const pass = "demo test passphrase, held discovery"
	release := make(chan struct{})
	out := &eventTrigger{event: "waiting", fire: func() { close(release) }}
	e := env{stdin: strings.NewReader(""), stdout: out, stderr: io.Discard, getenv: func(string) string { return "" }}
	cfg := demoConfig{peers: 3, profile: profileDefault, json: true, listen: "127.0.0.1:0", timeout: 90 * time.Second,
		passphrase: []byte(pass), holdDiscovery: map[int]<-chan struct{}{1: release}}
	if err := runDemoWith(context.Background(), e, cfg); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	text := out.String()
	if strings.Contains(text, pass) {
		t.Fatalf("the demo printed its passphrase:\n%s", text)
	}
	events := parseDemoEvents(t, text)
	checkTimeline(t, events, 3, text, false)
	at := make(map[string]int)
	for i, ev := range events {
		if _, ok := at[ev.Event]; !ok {
			at[ev.Event] = i
		}
		switch ev.Event {
		case "waiting":
			if !slices.Contains(ev.NotFound, [2]int{1, 2}) || !slices.Contains(ev.NotFound, [2]int{1, 3}) {
				t.Errorf("waiting for %v, want host 1 finding hosts 2 and 3 among them", ev.NotFound)
			}
		case "discover":
			if ev.Peer == 1 && i < at["waiting"] {
				t.Errorf("host 1 found host %d before its discovery was released:\n%s", ev.Other, text)
			}
		}
	}
	waiting, ok := at["waiting"]
	if !ok {
		t.Fatalf("no waiting event: the demo ended before host 1's discovery found anyone:\n%s", text)
	}
	if !(at["mesh"] < waiting && waiting < at["found_all"] && at["found_all"] < at["summary"]) {
		t.Errorf("want mesh, waiting, found_all, summary in that order:\n%s", text)
	}
	if s := events[len(events)-1]; !(s.FoundAllMS > s.MeshMS) {
		t.Errorf("summary: everyone found everyone at %vms, the mesh at %vms; want discovery last:\n%s", s.FoundAllMS, s.MeshMS, text)
	}
}

// eventTrigger collects the demo's --json output and calls fire once,
// when the first event of its kind is written (the timeline writes one
// event a Write).
type eventTrigger struct {
	event string
	fire  func()

	mu    sync.Mutex
	buf   bytes.Buffer
	fired bool
}

func (w *eventTrigger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.fired && bytes.Contains(p, []byte(`"event":"`+w.event+`"`)) {
		w.fired = true
		w.fire()
	}
	return w.buf.Write(p)
}

func (w *eventTrigger) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// The summary's fields are documented where a user of --json looks.
func TestDemoHelpNamesSummaryFields(t *testing.T) {
	_, stdout, _ := runCLI(t, nil, "demo", "--help")
	for _, field := range []string{`"found_all"`, "found_all_ms", "not_found", "full_mesh", "mesh_ms", `"waiting"`} {
		if !strings.Contains(stdout, field) {
			t.Errorf("demo --help does not name %s:\n%s", field, stdout)
		}
	}
}

func TestDemoUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--peers", "1"}, "--peers 1: want 2 to 32"},
		{[]string{"--peers", "33"}, "--peers 33: want 2 to 32"},
		{[]string{"--profile", "mdns"}, `--profile "mdns": want default or can-sync`},
		{[]string{"--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, _, stderr := runCLI(t, nil, append([]string{"demo"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("demo %q: exit %d, %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestDemoGivesUp: a demo that cannot finish in time says how far it got
// and fails, after a summary that says there is no full mesh. Its time
// runs out during the KDF (Argon2id over 64 MiB, three passes: far more
// than 10 ms anywhere), so no host ever starts.
func TestDemoGivesUp(t *testing.T) {
	e, out, _ := testEnv(t, nil, nil)
	err := runDemoWith(context.Background(), e, demoConfig{peers: 2, profile: profileDefault, json: true,
		timeout: 10 * time.Millisecond, listen: "127.0.0.1:0", passphrase: []byte("another test passphrase")})
	if err == nil || !strings.Contains(err.Error(), "no full mesh, discovery and delivery within 10ms: 0 of 1 host pairs connected, 0 of 2 discoveries reported") {
		t.Fatalf("a 300 ms demo: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last demoEvent
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Event != "summary" || last.FullMesh == nil || *last.FullMesh ||
		last.FoundAll == nil || *last.FoundAll || len(last.NotFound) != 2 {
		t.Fatalf("last line %q (%v): want a summary without a full mesh, where no host found the other", lines[len(lines)-1], err)
	}
}

// A host that holds no slot when the grace period ends is named in the
// timeline and in the summary, which still reports the mesh it joined.
func TestDemoReportsHostWithoutSlot(t *testing.T) {
	var out strings.Builder
	start := time.Now()
	d := &demo{cfg: demoConfig{peers: 2, profile: profileCanSync, json: true}, tl: newTimeline(&out, true, start), start: start,
		announced: start, meshAt: start.Add(time.Second), foundAllAt: start.Add(time.Second), slots: map[int]int{1: 0},
		found: map[[2]int]bool{{1, 2}: true, {2, 1}: true},
		pairs: map[[2]int]bool{{1, 2}: true}, delivered: map[int]bool{2: true},
		hosts: []*demoHost{{n: 1}, {n: 2}}}
	d.reportNoSlot()
	d.summary()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var noSlot, summary demoEvent
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &noSlot) != nil || json.Unmarshal([]byte(lines[1]), &summary) != nil {
		t.Fatalf("want a no_slot event and a summary:\n%s", out.String())
	}
	if noSlot.Event != "no_slot" || noSlot.Peer != 2 {
		t.Errorf("first event %+v, want no_slot for host 2", noSlot)
	}
	if summary.Event != "summary" || len(summary.NoSlot) != 1 || summary.NoSlot[0] != 2 || summary.FullMesh == nil || !*summary.FullMesh {
		t.Errorf("summary %+v, want a full mesh with host 2 holding no slot", summary)
	}
}
