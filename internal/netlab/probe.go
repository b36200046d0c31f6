package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// probe builds a lab of one router and one host behind it and checks that
// a datagram from the host reaches the core from the router's WAN
// address: that the namespaces, the veths, the forwarding and the
// iptables-nft masquerade all work here.
func probe() (err error) {
	l, err := newLab()
	if l != nil {
		defer func() {
			if cerr := l.close(); err == nil && cerr != nil {
				err = fmt.Errorf("tearing the probe down: %w", cerr)
			}
		}()
	}
	if err != nil {
		return err
	}
	r, err := l.router("r", PortPreserving)
	if err != nil {
		return err
	}
	h, err := r.host("h")
	if err != nil {
		return err
	}
	core := l.nodes[0]
	in, err := core.listenPacket("udp4", coreAddr+":0")
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := h.listenPacket("udp4", ":0")
	if err != nil {
		return err
	}
	defer out.Close()
	// Resend: the first datagram may wait on ARP; none should be lost, but
	// a probe that skips every test must not hinge on one packet.
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 16)
	for time.Now().Before(deadline) {
		if _, err := out.WriteTo([]byte("probe"), in.LocalAddr()); err != nil {
			return fmt.Errorf("sending from behind the router: %w", err)
		}
		in.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		_, from, err := in.ReadFrom(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return err
		}
		src := from.(*net.UDPAddr).AddrPort()
		if got := src.Addr().Unmap(); got != r.WAN() {
			return fmt.Errorf("a datagram from %s behind the router arrived from %s, not from the router's %s: masquerade did not translate", h.Addr(), got, r.WAN())
		}
		return nil
	}
	return fmt.Errorf("a datagram from %s behind the router never reached %s", h.Addr(), netip.MustParseAddr(coreAddr))
}
