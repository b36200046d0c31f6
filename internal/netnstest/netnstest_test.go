package netnstest

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

func TestMain(m *testing.M) { Main(m) }

// Inside the namespace the only interface is lo, up and multicast-capable,
// and a datagram sent to a multicast group on it comes back: what mDNS
// needs, with nowhere else for it to go.
func TestLoopbackCarriesMulticastAlone(t *testing.T) {
	Require(t)
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Fatalf("interfaces %v, want lo alone", ifaces)
	}
	lo := ifaces[0]
	if lo.Flags&net.FlagUp == 0 || lo.Flags&net.FlagMulticast == 0 {
		t.Fatalf("lo flags %v, want up and multicast", lo.Flags)
	}
	group := &net.UDPAddr{IP: net.IPv4(239, 255, 77, 1), Port: 45999}
	in, err := net.ListenMulticastUDP("udp4", &lo, group)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	// As mDNS stacks do, name the interface to send on: the namespace has
	// no route, multicast or other, beyond lo's own addresses.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out := ipv4.NewPacketConn(conn)
	if err := out.SetMulticastInterface(&lo); err != nil {
		t.Fatal(err)
	}
	if err := out.SetMulticastLoopback(true); err != nil {
		t.Fatal(err)
	}
	if _, err := out.WriteTo([]byte("ping"), nil, group); err != nil {
		t.Fatal(err)
	}
	in.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, _, err := in.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("multicast on lo: read %q, %v", buf[:n], err)
	}
}
