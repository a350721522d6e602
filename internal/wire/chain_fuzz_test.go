package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dunglas/httpsfv"
)

// fuzzChain is the valid 3-hop chain p0 -> p1 -> p2 -> p3 that p3 sends
// to self, rebuilt identically on every run.
func fuzzChain(t testing.TB) (chainPeers, []Hop, string) {
	c := newChainPeers(t)
	hops := buildHops(t, c.p[0], c.p[1], c.p[2], c.p[3])
	return c, hops, rawChain(t, hops...)
}

// chainSeeds are Treaty-Chain values, one comment per edge case.
func chainSeeds(t testing.TB) []string {
	c, hops, valid := fuzzChain(t)
	tampered := hops[0]
	tampered.Base = strings.Replace(tampered.Base, "code.review\n", "code.revieW\n", 1)
	return []string{
		valid,                                   // valid, 3 hops
		rawChain(t, hops[1], hops[2]),           // valid suffix, but not addressed to p3
		rawChain(t, hops[2]),                    // the originator's hop alone
		rawChain(t, tampered, hops[1], hops[2]), // tampered base
		rawChain(t, buildHops(t, c.p[0], c.p[1], c.p[0], c.p[3])...),                                         // loop
		rawChain(t, buildHops(t, c.p[0], c.p[1], c.p[2], c.p[4], c.p[5], c.p[6], c.p[7], c.p[8], c.p[3])...), // 8 hops, too deep
		strings.ReplaceAll(valid, "), (", "),("),                                                             // non-canonical spacing
		strings.Replace(valid, "), (", ");a, (", 1),                                                          // inner-list parameter
		strings.Replace(valid, ": :", ":;a=1 :", 1),                                                          // item parameter
		strings.Replace(valid, "==:", "=:", 1),                                                               // bad padding
		valid + ", " + valid,                                                                                 // doubled
		`("treaty=()" :` + strings.Repeat("A", 86) + `==:)`,                                                  // empty Signature-Input list
		`("x" :AA==:), :AA==:, ("\\" :` + strings.Repeat("A", 86) + `==: :AA==:)`,
		"(), ()", "()", `("")`, "(:AA==:)", `("a" "b")`, "?1", "1.5", `%"\xff"`, "", // shapes and types
		"(" + strings.Repeat(":AA==: ", 64) + ")",
	}
}

// FuzzParseChain: parseChain accepts only canonical lists (httpsfv reads
// and writes back the same bytes), every refusal is typed, hops round-trip
// through Hop, and only the one validly signed chain verifies.
func FuzzParseChain(f *testing.F) {
	for _, s := range chainSeeds(f) {
		f.Add(s)
	}
	c, _, valid := fuzzChain(f)
	caller, self := c.p[3].Public(), c.self.Public()
	f.Fuzz(func(t *testing.T, v string) {
		hops, suffixes, err := parseChain(v)
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		l, err := httpsfv.UnmarshalList([]string{v})
		if err != nil {
			t.Fatalf("parseChain accepted %q, httpsfv refused: %v", v, err)
		}
		if canon, err := httpsfv.Marshal(l); err != nil || canon != v || suffixes[0] != v {
			t.Fatalf("parseChain accepted non-canonical %q (httpsfv writes %q, %v)", v, canon, err)
		}
		for i, w := range hops {
			h, err := openHop(i, w, suffixes[i+1])
			if err != nil {
				if _, ok := ReasonOf(err); !ok {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			back, chainValue, covers, err := splitHop(h)
			if err != nil {
				t.Fatalf("hop %d opens but does not split: %v", i, err)
			}
			if back.sigInput != w.sigInput || !bytes.Equal(back.sig, w.sig) || strings.Join(back.values, "\x00") != strings.Join(w.values, "\x00") ||
				covers != (suffixes[i+1] != "") || chainValue != suffixes[i+1] {
				t.Fatalf("hop %d does not round-trip", i)
			}
		}
		chain, err := verifyChain(v, caller, self, 8, nil)
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if v != valid || len(chain) != 3 {
			t.Fatalf("verified a chain that was not signed: %q", v)
		}
	})
}
