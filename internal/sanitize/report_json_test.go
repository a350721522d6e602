package sanitize

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"
)

// AppendReportJSON writes exactly json.Marshal(c.Report()): for tallies of
// any size (past the inline rows), any order of adding, and names that need
// escaping; and for what Apply returns on real content.
func TestAppendReportJSONIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cats := []Category{CategoryEmail, CategoryPhone, CategoryIBAN, CategoryJWT, CategoryCanary, CategoryPrivateKey, "a<b", "é", "x\"y", "email2", ""}
	acts := []Action{ActionPass, ActionRedact, ActionPseudonymize, ActionBlock, ActionAllow, "z&"}
	check := func(c Clean) {
		t.Helper()
		want, err := json.Marshal(c.Report())
		if err != nil {
			t.Fatal(err)
		}
		if got := c.AppendReportJSON([]byte("prefix")); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("AppendReportJSON\n got %s\nwant prefix%s", got, want)
		}
		if c.Strongest() != c.Report().Strongest {
			t.Fatalf("Strongest() = %q, report says %q", c.Strongest(), c.Report().Strongest)
		}
	}
	check(Clean{})
	for range 5000 {
		var c Clean
		c.tally.strongest = acts[rng.Intn(len(acts))]
		for range rng.Intn(20) {
			c.tally.add(cats[rng.Intn(len(cats))], acts[rng.Intn(len(acts))])
		}
		check(c)
	}
	s := newTest(t)
	for _, in := range []string{"", "nothing here", "mail bob@example.com or alice@example.org, call +1 415 555 0100",
		`{"iban":"DE89370400440532013000","ip":"10.1.2.3","card":"4111 1111 1111 1111"}`} {
		c, err := s.Apply(peerA, Policy{Secrets: ActionRedact, PII: ActionPseudonymize}, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		check(c)
	}
}
