package sanitize

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// checkWithin fails when runWithin's answer differs from the regex run on
// the whole input.
func checkWithin(t *testing.T, sc *scanner, name string, re *regexp.Regexp, bp *byteProg, rn *reachNFA, in []byte) {
	t.Helper()
	want := re.FindSubmatchIndex(in)
	for _, bp := range []*byteProg{nil, bp} {
		if got := sc.runWithin(re, bp, rn, in); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s on %q: runWithin %v, regexp %v", name, in, got, want)
		}
	}
}

func TestReachBoundsExact(t *testing.T) {
	sc := &scanner{}
	for _, c := range []struct{ expr, in string }{
		{`(?i)k+`, "kK\u212ak!"}, {`a|ab`, "abc"}, {`ab|a`, "abc"}, {`x*`, "xxxy"}, {`x*$`, "xxx"},
		{`x*$`, "xxxy"}, {`\bfoo\b`, "foobar"}, {`\bfoo\b`, "foo bar"}, {`[^a]+`, "bé\xffa"},
		{`ey[a-z]{3,}\.ey[a-z]{3,}`, "eyabc.eyabcd.eyx"}, {`ey[a-z]{3,}\.ey[a-z]{3,}`, "eyabcd.zz"},
		{`(a)(b)?c`, "ac"}, {`.{2,5}`, "é\nab"}, {`(?s).{2,5}`, "é\nabcdef"}, {`a(b*)c|a`, "abbbbbd"},
		{`(?s)a.{2,40}b`, "a\nxxxb"}, {`a.+b`, "axxbxx\nb"}, {`a.+b`, "axxb"},
	} {
		re := regexp.MustCompile(`^(?:` + c.expr + `)`)
		rn, bp := newReachNFA(re.String()), newByteProg(re)
		for l := 0; l <= len(c.in); l++ {
			checkWithin(t, sc, c.expr, re, bp, rn, []byte(c.in[:l]))
		}
	}
	// The rules as they run, on windows of the corpus at every keyword hit.
	set, err := defaultGitleaks()
	if err != nil {
		t.Fatal(err)
	}
	n := 200
	if raceEnabled {
		n = 20
	}
	texts := corpusTexts(t, n)
	checked, bounded := 0, 0
	for _, g := range set.rules {
		for _, p := range []struct {
			re *regexp.Regexp
			bp *byteProg
			rn *reachNFA
		}{{g.anchored, g.anchoredBP, g.anchoredReach}, {g.tailRe, g.tailBP, g.tailReach}} {
			if p.re == nil || p.rn == nil {
				continue
			}
			pre := g.anchoredPre
			if p.re == g.tailRe {
				pre = g.tailPre
			}
			perRule := 0
			for _, d := range texts {
				for c := 0; c < len(d) && perRule < 150; c++ {
					if !prefixOK(pre, d[c:]) {
						continue
					}
					for _, l := range []int{64, 1200} {
						in := d[c:min(len(d), c+l)]
						checkWithin(t, sc, g.id, p.re, p.bp, p.rn, in)
						checked++
						perRule++
						if e, ok := p.rn.maxEnd(in, &sc.reach); ok && e+1 < len(in) {
							bounded++
						}
					}
				}
			}
		}
	}
	t.Logf("%d windows checked, %d bounded short of their end", checked, bounded)
	if checked < 200 || bounded < checked/2 {
		t.Fatalf("checked %d windows, %d of them bounded short of their end", checked, bounded)
	}
}

// TestReachLongFailingToken is the case the bound is for: a JWT-shaped run
// of kilobytes that is no JWT.
func TestReachLongFailingToken(t *testing.T) {
	set, err := defaultGitleaks()
	if err != nil {
		t.Fatal(err)
	}
	sc := &scanner{}
	for _, g := range set.rules {
		if g.id != "jwt" {
			continue
		}
		in := []byte("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx" + strings.Repeat("QUJD", 900) + "!")
		if e, ok := g.anchoredReach.maxEnd(in, &sc.reach); !ok || e >= 0 {
			t.Fatalf("maxEnd = %d, %v: want no match", e, ok)
		}
		checkWithin(t, sc, g.id, g.anchored, g.anchoredBP, g.anchoredReach, in)
		return
	}
	t.Fatal("no jwt rule")
}
