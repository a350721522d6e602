package membership

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

func testAnnouncement(t testing.TB) DecidedAnnouncement {
	a := DecidedAnnouncement{Action: ActionRevoke, Subject: testKey(t, 7).Public(), Passed: 42,
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()}
	a.Group[0], a.Digest[31] = 0xaa, 0x55
	return a
}

func TestDecidedAnnouncementRoundTrip(t *testing.T) {
	for _, action := range []string{ActionAdmit, ActionRevoke} {
		a := testAnnouncement(t)
		a.Action = action
		got, err := ParseDecidedAnnouncement(a.Marshal())
		if err != nil || got != a {
			t.Fatalf("%s: %+v %v", action, got, err)
		}
	}
	st, err := SignDecidedAnnouncement(testKey(t, 1), testAnnouncement(t))
	if err != nil || st.Verify() != nil || st.Kind != GossipKindDecided {
		t.Fatalf("signed announcement: %+v %v", st, err)
	}
	var heard []DecidedAnnouncement
	k := DecidedKinds(func(from identity.PublicKey, a DecidedAnnouncement) {
		if from == testKey(t, 1).Public() {
			heard = append(heard, a)
		}
	})[GossipKindDecided]
	if !k.Transient || k.Validate(st) != nil {
		t.Fatalf("kind: transient %v, validate %v", k.Transient, k.Validate(st))
	}
	k.Accept(st)
	if len(heard) != 1 || heard[0] != testAnnouncement(t) {
		t.Fatalf("accepted: %+v", heard)
	}
}

func TestDecidedAnnouncementStrict(t *testing.T) {
	good := testAnnouncement(t).Marshal()
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"empty":            nil,
		"short":            good[:len(good)-1],
		"trailing byte":    append(bytes.Clone(good), 0),
		"version":          mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"action":           mutate(func(b []byte) []byte { b[1] = 3; return b }),
		"zero subject":     mutate(func(b []byte) []byte { clear(b[2:34]); return b }),
		"zero index":       mutate(func(b []byte) []byte { clear(b[66:74]); return b }),
		"time before 2000": mutate(func(b []byte) []byte { clear(b[74:82]); return b }),
	}
	for name, b := range cases {
		if _, err := ParseDecidedAnnouncement(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestTransientNotKept: an announcement is accepted but not kept for later
// joiners (its announcer puts it in its own push-pull state:
// TestGovernorPullsMissedDecisions in internal/testnet).
func TestTransientNotKept(t *testing.T) {
	heard := make(chan DecidedAnnouncement, 1)
	c := newCluster(t, 1, DecidedKinds(func(_ identity.PublicKey, a DecidedAnnouncement) { heard <- a }))
	st, err := SignDecidedAnnouncement(c.keys[0], testAnnouncement(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ms[0].Publish(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if a := <-heard; a != testAnnouncement(t) {
		t.Fatalf("accepted %+v", a)
	}
	if n := len(c.ms[0].Statements()); n != 0 {
		t.Fatalf("%d statements kept; an announcement is transient", n)
	}
}

func FuzzParseDecidedAnnouncement(f *testing.F) {
	f.Add(testAnnouncement(f).Marshal())
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseDecidedAnnouncement(b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.Marshal(), b) {
			t.Fatalf("accepted a non-canonical encoding: %x", b)
		}
	})
}
