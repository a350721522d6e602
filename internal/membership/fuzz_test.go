package membership

import (
	"bytes"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// FuzzUnmarshalRecord: the decoder never panics, and whatever it accepts
// re-encodes to exactly the input (the encoding is canonical).
func FuzzUnmarshalRecord(f *testing.F) {
	r := signedRecord(f, 1, fullFields())
	b, _ := r.Marshal()
	f.Add(b)
	f.Add(b[:len(b)-1])   // truncated signature
	f.Add(append(b, 0))   // trailing byte
	f.Add([]byte("TRR2")) // magic only
	f.Add([]byte{})       // empty
	r = signedRecord(f, 1, relayFields(f))
	b, _ = r.Marshal()
	f.Add(b)                                          // with relays
	f.Add(b[:len(b)-64-32])                           // cut inside the relays
	f.Add(withByte(b, len(b)-64-2*32-1, MaxRelays+1)) // relay count over the limit
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := UnmarshalRecord(in)
		if err != nil {
			return
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("non-canonical input accepted")
		}
		_ = r.Verify(t0)
	})
}

// FuzzUnmarshalStatement: same properties for statements.
func FuzzUnmarshalStatement(f *testing.F) {
	s, _ := SignStatement(testKey(f, 2), "revoke", []byte("key z6Mk..."))
	b, _ := s.Marshal()
	f.Add(b)
	f.Add(b[:10])
	f.Add(append(b, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := UnmarshalStatement(in)
		if err != nil {
			return
		}
		out, err := s.Marshal()
		if err != nil || !bytes.Equal(in, out) {
			t.Fatalf("non-canonical input accepted: %v", err)
		}
		_ = s.Verify()
	})
}

// FuzzInspectPacket: the memberlist framing reader never panics or hangs on
// any packet a peer can send.
func FuzzInspectPacket(f *testing.F) {
	f.Add([]byte{mlCompound, 2, 0, 1, 0, 1, mlAlive, mlUser})
	f.Add([]byte{mlHasCRC, 0, 0, 0, 0, mlAlive, 0x80})
	f.Add([]byte{mlAlive, 0x86, 0xa4, 'N', 'o', 'd', 'e', 0xa1, 'x'})
	f.Add([]byte{mlUser, 'T', 'R', 'S', '1'})
	f.Add([]byte{mlPushPull, 0x83, 0xa5, 'N', 'o', 'd', 'e', 's', 0x01})
	m := newInspectOnly(f)
	peer := testKey(f, 9).Public()
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = m.inspectMsg(peer, in, 0)
		_ = m.inspectPushPull(bytes.NewReader(in))
	})
}

// newInspectOnly is a Membership with no network, enough to run inspection.
func newInspectOnly(tb testing.TB) *Membership {
	return &Membership{
		cfg:           Config{Self: testKey(tb, 8), Now: func() time.Time { return t0 }, Log: quietLog()},
		log:           quietLog(),
		warns:         mustWarnLimiter(tb, quietLog()),
		kinds:         map[string]Kind{"revoke": {Validate: func(Statement) error { return nil }}},
		peers:         map[identity.PublicKey]*peer{},
		stmts:         map[[32]byte]struct{}{},
		maxSeen:       maxSeenStatements,
		maxQueued:     maxQueuedBroadcasts,
		maxPeers:      maxTrackedPeers,
		pending:       map[identity.PublicKey]struct{}{},
		verifiedCache: map[string]Record{},
		refused:       map[identity.PublicKey]struct{}{},
		wake:          make(chan struct{}, 1),
	}
}
