package budget

import (
	"math"
	"testing"
	"time"
)

// FuzzParseLimit: --rate and --cost come from an operator's command line, and the
// local API may pass them through from agents; neither parser may panic, and
// whatever they accept must be inside the limits Validate enforces.
func FuzzParseLimit(f *testing.F) {
	f.Add("10/s")          // plain rate
	f.Add("5/10s")         // duration window
	f.Add("100/1h")        // cost
	f.Add("20/7d")         // days
	f.Add("1e400/s")       // overflow
	f.Add("NaN/h")         // not a number
	f.Add("-0/s")          // negative zero
	f.Add("1/0.0000001ns") // window rounds to zero
	f.Add("9/99999999h")   // window overflows
	f.Add("/")             // empty parts
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseRate(s); err == nil {
			if math.IsNaN(r) || r < 0 || r > maxRate {
				t.Fatalf("ParseRate(%q) = %v", s, r)
			}
			if err := (Limit{Rate: r}).Validate("fuzz"); err != nil {
				t.Fatalf("ParseRate(%q) = %v, which Validate refuses: %v", s, r, err)
			}
		}
		if c, w, err := ParseCost(s); err == nil {
			if math.IsNaN(c) || c < 0 || w < time.Second || w > maxWindow {
				t.Fatalf("ParseCost(%q) = %v, %v", s, c, w)
			}
			if err := (Limit{Cost: c, CostWindow: w}).Validate("fuzz"); err != nil && c > 0 {
				t.Fatalf("ParseCost(%q) = %v/%v, which Validate refuses: %v", s, c, w, err)
			}
		}
	})
}
