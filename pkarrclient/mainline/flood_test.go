package mainline_test

// A serving node under a flood of queries from one source: the flooder
// spends its own answer budget, not everyone's.

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"

	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// pingFrom is a ping query with transaction id tid.
func pingFrom(id byte, tid string) []byte {
	return fmt.Appendf(nil, "d1:ad2:id20:%se1:q4:ping1:t%d:%s1:y1:qe", strings.Repeat(string(id), 20), len(tid), tid)
}

// listenOn opens a UDP socket on ip (an address of 127.0.0.0/8).
func listenOn(t *testing.T, ip string) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// flood sends pings from conn to the node at about rate per second until
// stop is closed, counting what it sent and the answers it got.
type flood struct {
	sent, answered atomic.Int64
	wg             sync.WaitGroup
}

func startFlood(conn net.PacketConn, to net.Addr, perSecond int, stop <-chan struct{}) *flood {
	f := &flood{}
	f.wg.Add(2)
	go func() { // answers
		defer f.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var m krpc.Msg
			if bencode.Unmarshal(buf[:n], &m) == nil && m.Y == "r" {
				f.answered.Add(1)
			}
		}
	}()
	go func() { // pings, in bursts of ten
		defer f.wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			for range max(perSecond/100, 1) {
				i++
				conn.WriteTo(pingFrom('f', fmt.Sprintf("f%d", i)), to)
				f.sent.Add(1)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return f
}

// pingAll sends n pings from conn, one after the other, each waiting up
// to wait for its answer, and returns how many were answered.
func pingAll(t *testing.T, conn net.PacketConn, to net.Addr, n int, wait time.Duration) int {
	t.Helper()
	answered := 0
	buf := make([]byte, 1<<16)
	for i := range n {
		tid := fmt.Sprintf("v%d", i)
		if _, err := conn.WriteTo(pingFrom('v', tid), to); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		for {
			m, err := readMsg(conn, buf)
			if err != nil {
				break // unanswered
			}
			if m.T == tid && m.Y == "r" {
				answered++
				break
			}
		}
		// A victim within the default budget (20 a second): it asks as a
		// client doing a few lookups a second would.
		time.Sleep(50 * time.Millisecond)
	}
	return answered
}

func readMsg(conn net.PacketConn, buf []byte) (krpc.Msg, error) {
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return krpc.Msg{}, err
		}
		var m krpc.Msg
		if bencode.Unmarshal(buf[:n], &m) == nil {
			return m, nil
		}
	}
}

// TestDHTNodeFloodedByOneSource: one source pings a serving node with its
// default limits at about 1000 per second, four times the node's whole
// send budget; another source's pings meanwhile are (nearly) all answered,
// and the flooder gets a small share of its own. Earlier the one budget
// went to whoever asked most, and a victim lost about a quarter.
func TestDHTNodeFloodedByOneSource(t *testing.T) {
	// Not parallel: the flood loads the machine, and other tests'
	// lookups on loopback should not have to run through it.
	g := &mainlinetest.Guard{}
	conn, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	node, err := mainline.New(mainline.WithConn(conn), mainline.WithServing(0),
		mainline.WithBootstrap(), mainline.WithResolver(g), mainline.WithRefreshInterval(0))
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.Close()
		g.Check(t)
	})
	to := node.Addr()

	flooder := listenOn(t, "127.0.0.2")
	victim := listenOn(t, "127.0.0.3")
	stop := make(chan struct{})
	f := startFlood(flooder, to, 1000, stop)
	// Let the flood use up any burst before the victim starts.
	for f.sent.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	const pings = 60
	got := pingAll(t, victim, to, pings, 2*time.Second)
	close(stop)
	time.Sleep(100 * time.Millisecond) // late answers to the flooder
	flooder.Close()
	f.wg.Wait()

	sent, answered := f.sent.Load(), f.answered.Load()
	t.Logf("victim: %d of %d pings answered; flooder: %d of %d", got, pings, answered, sent)
	if sent < 500 {
		t.Fatalf("the flood sent only %d pings", sent)
	}
	if got < pings*95/100 {
		t.Errorf("the victim got %d of %d answers under the flood", got, pings)
	}
	if answered*2 > sent {
		t.Errorf("the flooder got %d answers to %d pings: not limited", answered, sent)
	}
}
