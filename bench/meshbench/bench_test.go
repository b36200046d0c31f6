package meshbench

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRunTwoPeersEachSystem runs the benchmark once with two peers of
// each system against the pkarr-relay limit model and checks that it
// completes and prints a row for each system and the ratios. The two
// phrasemeet-default and kad-dht peers must meet within the generous
// timeout; can-sync's two peers usually race for one slot and wait for a
// later scan, so its row may say unfinished (that is what the row is
// for). No time is asserted beyond the timeout.
func TestRunTwoPeersEachSystem(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	err := Run(ctx, []string{"-n", "2", "-runs", "1", "-timeout", "20s", "-limits", "pkarr"}, &out, &progress)
	t.Logf("progress:\n%s", progress.String())
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	report := out.String()
	for _, row := range []string{
		"| 2 | " + systemLabel[sysOurs] + " | ",
		"| 2 | " + systemLabel[sysKad] + " | ",
		"| 2 | " + systemLabel[sysCanSync] + " | ",
		"| 2 | " + systemLabel[sysKad] + " | ", // in the ratios too
	} {
		if !strings.Contains(report, row) {
			t.Errorf("the report has no row starting %q", row)
		}
	}
	if n := strings.Count(report, "| 2 | "); n != 5 {
		t.Errorf("the report has %d rows for 2 peers, want 3 systems + 2 ratios", n)
	}
	for _, sys := range []string{sysOurs, sysKad} {
		if line := rowOf(report, systemLabel[sys]); strings.Contains(line, "> 20 s") {
			t.Errorf("two %s peers did not meet within 20 s: %s", sys, line)
		}
	}
	if !strings.Contains(report, "derived once") {
		t.Error("the report does not say the group is derived once")
	}
}

func rowOf(report, label string) string {
	for _, l := range strings.Split(report, "\n") {
		if strings.Contains(l, "| "+label+" | ") {
			return l
		}
	}
	return ""
}

// TestFlagsRefused: bad flags are errors, not panics or silent defaults.
func TestFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "1"}, {"-n", "x"}, {"-limits", "n1"}, {"-systems", "hyperswarm"}, {"-runs", "0"}, {"-timeout", "0s"}, {"extra"},
	} {
		var out, errs bytes.Buffer
		if err := Run(t.Context(), args, &out, &errs); err == nil {
			t.Errorf("Run(%q) succeeded", args)
		}
		if out.Len() > 0 {
			t.Errorf("Run(%q) printed a report", args)
		}
	}
}

// TestQuantile: nearest rank, unfinished runs (0) above every finished one.
func TestQuantile(t *testing.T) {
	s := time.Second
	ts := []time.Duration{3 * s, 1 * s, 0, 2 * s, 5 * s}
	if got := quantile(ts, .5); got != 3 {
		t.Errorf("median %v, want 3", got)
	}
	if got := quantile(ts, .95); !math.IsInf(got, 1) {
		t.Errorf("p95 %v, want +Inf (the unfinished run)", got)
	}
	if got := quantile(ts[:2], .5); got != 1 {
		t.Errorf("median of two %v, want the lower, 1", got)
	}
	if got := ratio(1, 4, time.Minute); got != "0.25" {
		t.Errorf("ratio(1, 4) = %q", got)
	}
	if got := ratio(math.Inf(1), 4, time.Minute); got != "> 15.00 (ours unfinished)" {
		t.Errorf("ratio(Inf, 4) = %q", got)
	}
	if got := ratio(6, math.Inf(1), time.Minute); got != "< 0.10 (theirs unfinished)" {
		t.Errorf("ratio(6, Inf) = %q", got)
	}
}

// TestRelayLimits: the pkarr model answers 429 once an IP has spent its
// burst of 10 on any mix of requests, other IPs unaffected; the n0 model
// limits PUTs only; the counts see it.
func TestRelayLimits(t *testing.T) {
	get := func(r *relay, ip string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+"/yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no", nil)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	r, err := startRelay(limitPkarr)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	r.setCounting(true)
	for i := range 10 {
		if code := get(r, peerIP(0)); code == http.StatusTooManyRequests {
			t.Fatalf("GET %d of the burst of 10 answered 429", i+1)
		}
	}
	if code := get(r, peerIP(0)); code != http.StatusTooManyRequests {
		t.Errorf("GET 11 in a burst answered %d, want 429", code)
	}
	if code := get(r, peerIP(1)); code == http.StatusTooManyRequests {
		t.Error("another IP was limited too")
	}
	if c := r.setCounting(false); c.Gets != 12 || c.TooMany != 1 {
		t.Errorf("counted %+v, want 12 GETs, one 429", c)
	}

	n0, err := startRelay(limitN0)
	if err != nil {
		t.Fatal(err)
	}
	defer n0.close()
	for range 20 {
		if code := get(n0, peerIP(0)); code == http.StatusTooManyRequests {
			t.Fatal("the n0 model limited a GET")
		}
	}
}

// TestTracker: found is declared when every host has reported every
// other (its own ID and strangers do not count), mesh when every pair is
// connected at once, and wait returns when both are known.
func TestTracker(t *testing.T) {
	var hosts []host.Host
	for range 3 {
		h, err := newHost(0)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		hosts = append(hosts, h)
	}
	stranger, err := newHost(0)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	tr := newTracker(hosts)
	tr.sawPeer(0, hosts[1].ID()) // before the clock starts: not counted
	tr.begin()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go tr.watchMesh(ctx)
	saw := func(i, j int) { tr.sawPeer(i, hosts[j].ID()) }
	saw(0, 0)
	tr.sawPeer(0, stranger.ID())
	for _, p := range [][2]int{{0, 2}, {1, 0}, {1, 2}, {2, 0}, {2, 1}, {2, 1}} {
		saw(p[0], p[1])
	}
	peek := func() (time.Duration, time.Duration) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.foundAt, tr.meshAt
	}
	if f, _ := peek(); f != 0 {
		t.Fatalf("found declared at %v with host 0 not having reported host 1", f)
	}
	saw(0, 1)
	if f, _ := peek(); f == 0 {
		t.Fatal("found not declared once every host reported every other")
	}
	connect := func(i, j int) {
		if err := hosts[i].Connect(ctx, peer.AddrInfo{ID: hosts[j].ID(), Addrs: hosts[j].Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	connect(0, 1)
	connect(1, 2)
	time.Sleep(100 * time.Millisecond) // several polls
	if _, m := peek(); m != 0 {
		t.Fatalf("mesh declared at %v with hosts 0 and 2 not connected", m)
	}
	connect(2, 0)
	found, mesh := tr.wait(ctx)
	if found == 0 || mesh == 0 {
		t.Fatalf("wait returned found %v, mesh %v; want both", found, mesh)
	}
}
