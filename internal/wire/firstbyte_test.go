package wire

import (
	"net/http"
	"testing"
	"time"
)

func TestAcceptDelay(t *testing.T) {
	for _, tc := range []struct {
		vals []string
		want time.Duration
	}{
		{nil, 0},
		{[]string{"10000"}, MaxAcceptDelay},
		{[]string{"100"}, 10 * time.Millisecond},
		{[]string{"1"}, 100 * time.Microsecond},
		{[]string{"600000"}, MaxAcceptDelay},
		{[]string{"600001"}, 0}, // over the limits' range
		{[]string{"0"}, 0},      // below it
		{[]string{"-5"}, 0},     // not a count
		{[]string{"+5"}, 0},     // not digits only
		{[]string{" 5"}, 0},     // no padding
		{[]string{"5ms"}, 0},    // no unit
		{[]string{"0x10"}, 0},   // decimal only
		{[]string{"٥"}, 0},      // ASCII digits only
		{[]string{"5", "5"}, 0}, // repeated: ambiguous
		{[]string{"99999999999999999999"}, 0},
	} {
		h := http.Header{}
		if tc.vals != nil {
			h[HeaderFirstByteWithin] = tc.vals
		}
		if got := AcceptDelay(h); got != tc.want {
			t.Errorf("AcceptDelay(%q) = %v, want %v", tc.vals, got, tc.want)
		}
	}
}

func TestSetFirstByteWithinRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{time.Microsecond, time.Millisecond, 250 * time.Millisecond, 10 * time.Second, 10 * time.Minute} {
		h := http.Header{}
		SetFirstByteWithin(h, d)
		want := min(max(d, time.Millisecond).Truncate(time.Millisecond)/10, MaxAcceptDelay)
		if got := AcceptDelay(h); got != want {
			t.Errorf("d=%v: AcceptDelay = %v, want %v", d, got, want)
		}
	}
}
