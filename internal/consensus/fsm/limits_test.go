package fsm

import (
	"fmt"
	"testing"
)

func TestOpenMotionLimit(t *testing.T) {
	ks := keys(t, 1)
	d := newDriver(t, group(t, ModeRaft, ks))
	d.m.lim.open = 8
	for range d.m.lim.open {
		must(t, d.do(ks[0], OpenMotion(d.name(), 1, 0, "")))
	}
	wantCode(t, d.do(ks[0], OpenMotion(d.name(), 1, 0, "")), CodeInvalid)
	must(t, d.do(ks[0], Vote("m1", true))) // deciding one frees a slot
	must(t, d.do(ks[0], OpenMotion(d.name(), 1, 0, "")))
}

func TestDecidedMotionsAreForgottenOldestFirst(t *testing.T) {
	ks := keys(t, 1)
	d := newDriver(t, group(t, ModeRaft, ks))
	d.m.lim.decided = 16
	var first, second string
	for i := range d.m.lim.decided + 1 {
		// Each motion expires when the next entry's time passes its deadline.
		r := must(t, d.do(ks[0], OpenMotion(d.name(), 1, d.now+2, "")))
		switch i {
		case 0:
			first = r.Motion
		case 1:
			second = r.Motion
		}
		d.now++
	}
	d.tickTo(d.now + 10)
	if _, ok := d.m.Motion(first); ok {
		t.Fatal("oldest decided motion kept past the limit")
	}
	if mo, ok := d.m.Motion(second); !ok || mo.Outcome != OutcomeFailed {
		t.Fatal("second oldest forgotten too early")
	}
	wantCode(t, d.do(ks[0], Vote(first, true)), CodeNotFound)
	r, err := Restore(d.m.Snapshot())
	if err != nil || r.Digest() != d.m.Digest() {
		t.Fatalf("restore at the limit: %v", err)
	}
}

func TestStoreByteLimit(t *testing.T) {
	ks := keys(t, 1)
	d := newDriver(t, group(t, ModeRaft, ks))
	d.m.lim.bytes = 4 * (1000 + 5)
	big := make([]byte, 1000)
	n := 0
	for ; ; n++ {
		r := d.do(ks[0], Put(fmt.Sprintf("k%04d", n), big))
		if !r.OK() {
			wantCode(t, r, CodeInvalid)
			break
		}
	}
	if n != 4 {
		t.Fatalf("store took %d values, want 4", n)
	}
	must(t, d.do(ks[0], Delete("k0000")))
	must(t, d.do(ks[0], Put("k0000", big)))
	// Overwriting with a smaller value always fits.
	must(t, d.do(ks[0], Put("k0001", nil)))
	if r, err := Restore(d.m.Snapshot()); err != nil || r.bytes != d.m.bytes {
		t.Fatalf("restore: %v", err)
	}
}

func TestStoreKeyLimit(t *testing.T) {
	ks := keys(t, 1)
	d := newDriver(t, group(t, ModeRaft, ks))
	d.m.lim.keys = 3
	for i := range 3 {
		must(t, d.do(ks[0], Put(fmt.Sprint(i), nil)))
	}
	wantCode(t, d.do(ks[0], Put("3", nil)), CodeInvalid)
	must(t, d.do(ks[0], Put("2", []byte("overwrite is fine"))))
}

// One member cannot fill the group's open motions: past its own share it is
// refused, and the others can still open motions.
func TestOpenMotionLimitPerMember(t *testing.T) {
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeBFT, ks))
	liar := ks[3]
	for range MaxOpenMotionsPerMember {
		must(t, d.do(liar, OpenMotion(d.name(), 4, 0, "")))
	}
	wantCode(t, d.do(liar, OpenMotion(d.name(), 4, 0, "")), CodeInvalid)
	wantCode(t, d.do(liar, AddMember(key(t, 99).Public(), 0, "")), CodeInvalid)
	must(t, d.do(ks[0], OpenMotion(d.name(), 3, 0, "an honest motion")))
	must(t, d.do(ks[0], Vote("m1", false))) // deciding one of its own frees a slot
	must(t, d.do(liar, OpenMotion(d.name(), 4, 0, "")))
}
