package fsm

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestMotionsListsInIDOrder(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	must(t, d.do(ks[0], OpenMotion("b", 2, 0, "")))
	must(t, d.do(ks[0], OpenMotion("a", 2, 0, "")))
	must(t, d.do(ks[1], Vote("b", true)))
	ms := d.m.Motions()
	if len(ms) != 2 || ms[0].Name != "b" || ms[1].Name != "a" || len(ms[0].Yes) != 1 {
		t.Fatalf("motions = %+v", ms)
	}
	ms[0].Yes[0] = identity.PublicKey{} // a copy: the state is untouched
	if mo, _ := d.m.Motion("b"); mo.Yes[0].IsZero() {
		t.Fatal("Motions shares the state's vote slice")
	}
}
