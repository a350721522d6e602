package node

import (
	"fmt"
	"testing"
	"time"
)

// TestRefusalTallies: per key, the first refusal of an interval is recorded
// on its own and the rest are counted, with the first and last occurrence and
// the count per reason, into one summary when the interval ends; a key quiet
// for a whole interval is forgotten.
func TestRefusalTallies(t *testing.T) {
	t.Parallel()
	r := newRefusalTallies(time.Minute, 8)
	k := refusalKey{source: "did:key:a", kind: "call.refused", direction: "in", stage: "wire"}
	t0 := time.Unix(1000, 0)
	if !r.admit(k, "missing_component", t0) {
		t.Fatal("first refusal of a key not recorded")
	}
	for i := 1; i <= 1000; i++ {
		reason := "missing_component"
		if i%2 == 0 {
			reason = "malformed"
		}
		if r.admit(k, reason, t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("refusal %d recorded on its own inside the interval", i)
		}
	}
	if s := r.due(t0.Add(time.Minute-time.Nanosecond), false); len(s) != 0 {
		t.Fatalf("summary before the interval ended: %+v", s)
	}
	s := r.due(t0.Add(time.Minute), false)
	if len(s) != 1 || s[0].count != 1000 || !s[0].first.Equal(t0.Add(time.Millisecond)) || !s[0].last.Equal(t0.Add(time.Second)) ||
		s[0].reasons["malformed"] != 500 || s[0].reasons["missing_component"] != 500 {
		t.Fatalf("summary = %+v", s)
	}
	// The key lives on: the flood goes on, so only one summary per interval.
	if r.admit(k, "malformed", t0.Add(61*time.Second)) {
		t.Fatal("refusal recorded on its own while its key's flood goes on")
	}
	if s := r.due(t0.Add(2*time.Minute), false); len(s) != 1 || s[0].count != 1 {
		t.Fatalf("second summary = %+v", s)
	}
	// A whole quiet interval forgets the key; its next refusal is recorded.
	if s := r.due(t0.Add(3*time.Minute), false); len(s) != 0 {
		t.Fatalf("summary of a quiet interval: %+v", s)
	}
	if !r.admit(k, "malformed", t0.Add(3*time.Minute)) {
		t.Fatal("first refusal after a quiet interval not recorded")
	}
}

// TestRefusalTalliesBounded: beyond maxKeys, sources share a catch-all key, and
// reasons beyond refusalMaxKinds count as "other"; a final flush returns and
// forgets everything.
func TestRefusalTalliesBounded(t *testing.T) {
	t.Parallel()
	r := newRefusalTallies(time.Minute, 4)
	t0 := time.Unix(1000, 0)
	recorded := 0
	for i := range 100 {
		k := refusalKey{source: fmt.Sprintf("addr:10.0.0.%d", i), kind: "handshake.refused", direction: "in", stage: "transport"}
		if r.admit(k, "unknown_key", t0) {
			recorded++
		}
	}
	// 4 keys of their own, then one catch-all key: 5 recorded, 95 counted.
	if recorded != 5 || len(r.tallies) != 5 {
		t.Fatalf("recorded %d, keys %d; want 5 and 5", recorded, len(r.tallies))
	}
	k := refusalKey{source: "did:key:b", kind: "call.refused", direction: "in", stage: "wire"}
	for i := range refusalMaxKinds + 5 {
		r.admit(k, fmt.Sprintf("reason%d", i), t0)
	}
	s := r.due(t0, true)
	total, other := 0, 0
	for _, x := range s {
		total += x.count
		other += x.reasons["other"]
		if len(x.reasons) > refusalMaxKinds+1 {
			t.Fatalf("%d reasons kept", len(x.reasons))
		}
	}
	// b's first refusal opened the wire catch-all key (recorded); of the
	// other 20, 16 reasons are kept and 4 count as other.
	if total != 95+refusalMaxKinds+4 || other != 4 {
		t.Fatalf("flushed %d refusals (%d other); want %d (4)", total, other, 95+refusalMaxKinds+4)
	}
	if len(r.tallies) != 0 {
		t.Fatalf("%d keys after the final flush", len(r.tallies))
	}
}

func TestStrangerSource(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.7:4433":              "addr:192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:4433": "addr:2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":    "addr:2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":        "addr:192.0.2.7",
		"not an address":              "addr:not an address",
	} {
		if got := strangerSource(in); got != want {
			t.Errorf("strangerSource(%q) = %q, want %q", in, got, want)
		}
	}
}
