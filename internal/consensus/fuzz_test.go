package consensus

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// FuzzReadHello: the definition a peer sends never crashes or hangs the
// reader, and what it accepts is a valid group that encodes back to the
// bytes it read.
func FuzzReadHello(f *testing.F) {
	k := testKey(f, 1)
	g, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{k.Public(), testKey(f, 2).Public()})
	canon := g.Canonical()
	hello := append([]byte(helloMagic), binary.BigEndian.AppendUint32(nil, uint32(len(canon)))...)
	f.Add(append(hello, canon...))
	f.Add(hello)
	f.Add([]byte(helloMagic))
	f.Add(append([]byte(helloMagic), 0xff, 0xff, 0xff, 0xff))
	f.Add(append([]byte(helloMagic), 0, 0, 0, 0)) // a member that does not list the reader
	f.Add(append(append([]byte{}, hello...), canon[:len(canon)-1]...))
	g.Nonce = fsm.Nonce{1, 2, 3}
	withNonce := g.Canonical()
	f.Add(append(append([]byte(helloMagic), binary.BigEndian.AppendUint32(nil, uint32(len(withNonce)))...), withNonce...))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := readHello(bytes.NewReader(b))
		if err != nil {
			return
		}
		if g.Validate() != nil {
			t.Fatalf("accepted an invalid group %v", g)
		}
		got := g.Canonical()
		off := len(helloMagic) + 4
		if !bytes.Equal(got, b[off:off+len(got)]) {
			t.Fatal("accepted bytes do not re-encode to themselves")
		}
	})
}

// The largest definition, nonce included, fits in a hello.
func TestLargestDefinitionFitsAHello(t *testing.T) {
	keys := make([]identity.PublicKey, fsm.MaxMembers)
	for i := range keys {
		keys[i] = testKey(t, byte(i+1)).Public()
	}
	g, err := fsm.NewGroup(string(bytes.Repeat([]byte("g"), fsm.MaxNameLen)), fsm.ModeBFT, 0, keys)
	if err != nil {
		t.Fatal(err)
	}
	g.Nonce = fsm.Nonce{1}
	if n := len(g.Canonical()); n > maxHello {
		t.Fatalf("definition of %d bytes, hello limit %d", n, maxHello)
	}
}
