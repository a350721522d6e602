package membership

import (
	"bufio"
	"bytes"
	"testing"
)

// TestReadHelloRefusesNames: the address in a gossip hello is an IP literal
// (every node sends its advertise address); a host name is refused without a
// DNS lookup, so a peer cannot make this node resolve names of its choosing,
// each lookup holding a goroutine past the connection's own deadlines.
// "localhost" resolves from /etc/hosts: before the fix it was accepted.
func TestReadHelloRefusesNames(t *testing.T) {
	t.Parallel()
	hello := func(kind byte, addr string) *bufio.Reader {
		return bufio.NewReader(bytes.NewReader(append([]byte{kind, byte(len(addr))}, addr...)))
	}
	for _, addr := range []string{"127.0.0.1:7420", "[::1]:7420", "[fe80::1%eth0]:1"} {
		kind, got, err := readHello(hello(connPacket, addr))
		if err != nil || kind != connPacket || got != addr {
			t.Errorf("hello %q: kind %q addr %q err %v", addr, kind, got, err)
		}
	}
	for _, addr := range []string{"localhost:7420", "example.invalid:1", "127.0.0.1", "127.0.0.1:x", "", "1.2.3.4:99999"} {
		if _, _, err := readHello(hello(connStream, addr)); err == nil {
			t.Errorf("hello %q accepted", addr)
		}
	}
	if _, _, err := readHello(bufio.NewReader(bytes.NewReader([]byte{connPacket, 9, '1'}))); err == nil {
		t.Error("truncated hello accepted")
	}
}

// FuzzReadHello: the hello parser never panics, and what it accepts is the
// IP literal it was sent.
func FuzzReadHello(f *testing.F) {
	f.Add([]byte{connPacket, 14, '1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '7', '4', '2', '0'})
	f.Add([]byte{connStream, 10, '[', ':', ':', '1', ']', ':', '7', '4', '2', '0'})
	f.Add([]byte{connStream, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		_, addr, err := readHello(bufio.NewReader(bytes.NewReader(in)))
		if err == nil && (len(in) < 2 || addr != string(in[2:2+int(in[1])])) {
			t.Fatalf("accepted %q from %q", addr, in)
		}
	})
}
