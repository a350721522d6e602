package transport

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// TestRelayRegistrationCarriesNothing: a registered callee sends nothing on
// its registration after the command; bytes there (which no budget or pace
// covers: the relay would read and discard them at line rate for as long as
// the registration lasts) end the registration.
func TestRelayRegistrationCarriesNothing(t *testing.T) {
	t.Parallel()
	x := newRelayed(t, RelayConfig{})
	kf := testKey(t, 36)
	x.relay.peers.set(kf.Public(), true)
	fake := newNode(t, kf, admit(), Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	reg, err := fake.Dial(ctx, x.relay.addr(), x.relay.Self(), ProtoRelay)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.Write([]byte{relayRegister}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registered", func() bool { return x.r.Registered(kf.Public()) })
	before := x.r.Forwarded()
	// Bounded: at most 64 MiB or 5 s, whichever ends first; the relay must
	// cut the registration long before.
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	_ = reg.SetWriteDeadline(time.Now().Add(5 * time.Second))
	sent := 0
	for sent < 64<<20 {
		n, err := reg.Write(chunk)
		sent += n
		if err != nil {
			break
		}
	}
	waitFor(t, "registration ended", func() bool { return !x.r.Registered(kf.Public()) })
	if sent >= 64<<20 {
		t.Fatalf("the relay took %d bytes on a registration", sent)
	}
	if x.r.Forwarded() != before {
		t.Fatal("registration bytes were forwarded")
	}
	_ = reg.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, reg); err != nil {
		t.Fatalf("registration not closed by the relay: %v", err)
	}
}
