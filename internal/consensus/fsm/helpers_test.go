package fsm

import (
	"fmt"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

// key returns a deterministic test key; distinct b give distinct keys.
func key(t testing.TB, b byte) identity.PrivateKey {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = b
	}
	k, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keys(t testing.TB, n int) []identity.PrivateKey {
	out := make([]identity.PrivateKey, n)
	for i := range out {
		out[i] = key(t, byte(i+1))
	}
	return out
}

func pubs(ks []identity.PrivateKey) []identity.PublicKey {
	out := make([]identity.PublicKey, len(ks))
	for i, k := range ks {
		out[i] = k.Public()
	}
	return out
}

func group(t testing.TB, mode Mode, ks []identity.PrivateKey) Group {
	t.Helper()
	g, err := NewGroup("reviews", mode, 0, pubs(ks))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func machine(t testing.TB, g Group) *Machine {
	t.Helper()
	m, err := New(g)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fataler is what signed needs of testing.TB and *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// signed signs op and returns the wire form.
func signed(t fataler, k identity.PrivateKey, id ID, seq uint64, op Op) []byte {
	t.Helper()
	q, err := SignRequest(k, id, seq, op)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// driver applies entries with increasing indexes and times and per-key seqs.
type driver struct {
	t     testing.TB
	m     *Machine
	index uint64
	now   int64
	seq   map[identity.PublicKey]uint64
	// lastReq is the request of the last entry raw applied.
	lastReq []byte
}

func newDriver(t testing.TB, g Group) *driver {
	return &driver{t: t, m: machine(t, g), now: 1000, seq: map[identity.PublicKey]uint64{}}
}

func (d *driver) do(k identity.PrivateKey, op Op) Result {
	d.t.Helper()
	d.seq[k.Public()]++
	return d.raw(signed(d.t, k, d.m.Group().ID(), d.seq[k.Public()], op))
}

// name is a motion name unique within the driver's log.
func (d *driver) name() string { return fmt.Sprintf("m%d", d.index+1) }

func (d *driver) raw(req []byte) Result {
	d.index++
	d.now++
	d.lastReq = req
	return d.m.Apply(d.index, Entry{Time: d.now, Request: req})
}

func (d *driver) tickTo(now int64) Result {
	d.index++
	d.now = now
	return d.m.Apply(d.index, Entry{Time: now})
}

func must(t testing.TB, r Result) Result {
	t.Helper()
	if !r.OK() {
		t.Fatalf("entry %d refused: %v", r.Index, r.Err())
	}
	return r
}

func wantCode(t testing.TB, r Result, c Code) {
	t.Helper()
	if r.Code != c {
		t.Fatalf("entry %d: code %q (%s), want %q", r.Index, r.Code, r.Reason, c)
	}
}
