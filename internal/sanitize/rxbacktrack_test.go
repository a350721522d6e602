package sanitize

import (
	"fmt"
	"regexp"
	"testing"
)

// checkByteProg fails when byteProg's answer differs from regexp's.
func checkByteProg(t *testing.T, name string, re *regexp.Regexp, bp *byteProg, s *btScratch, in []byte) {
	t.Helper()
	for _, ncap := range []int{2, bp.ncap} {
		want := re.FindSubmatchIndex(in)
		if ncap == 2 {
			want = re.FindIndex(in)
		}
		if got := bp.find(in, ncap, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s on %q (ncap %d): byteProg %v, regexp %v", name, in, ncap, got, want)
		}
	}
}

func TestByteProgAsRegexp(t *testing.T) {
	var s btScratch
	for _, c := range []struct{ expr, in string }{
		{`(?i)k+`, "kK\u212ak!"}, {`a|ab`, "abc"}, {`ab|a`, "abc"}, {`x*`, "xxxy"}, {`x*$`, "xxx"},
		{`x*?y`, "xxxy"}, {`\bfoo\b`, "foobar"}, {`\bfoo\b`, "foo bar"}, {`foo\B`, "foobar"}, {`[^a]+`, "bé\xffa"},
		{`(a)(b)?c`, "ac"}, {`(a|ab)(c|bcd)(d*)`, "abcd"}, {`a(b*)c|a`, "abbbbbd"}, {`(?m)^a$\n^b$`, "a\nb"},
		{`(?s)a.{2,40}b`, "a\nxxxb"}, {`a.+b`, "axxbxx\nb"}, {`(x+x+)+y`, "xxxxxxxxxxxxxxxxxxxxz"},
		{`\b(ey[a-z]{3,}\.ey[a-z]{3,})(?:[\x60'"\s;]|\\[nr]|$)`, "eyabc.eyabcd"}, {`(a*)*b`, "aaab"},
		{`(?i)(?:key|token)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(=|:)`, "API_KEY_ID = x"}, {`é+x`, "ééx"},
	} {
		re := regexp.MustCompile(`^(?:` + c.expr + `)`)
		bp := newByteProg(re)
		if bp == nil {
			t.Fatalf("%s: no byteProg", c.expr)
		}
		for l := 0; l <= len(c.in); l++ {
			checkByteProg(t, c.expr, re, bp, &s, []byte(c.in[:l]))
		}
	}
	// The rules' anchored regexes as they run, on windows of the corpus.
	set, err := defaultGitleaks()
	if err != nil {
		t.Fatal(err)
	}
	n, minMatched := 200, 100
	if raceEnabled {
		n, minMatched = 20, 20 // regexp runs many times slower under the race detector
	}
	texts := corpusTexts(t, n)
	checked, matched := 0, 0
	for _, g := range set.rules {
		for _, p := range []struct {
			re  *regexp.Regexp
			pre []byteSet
		}{{g.anchored, g.anchoredPre}, {g.tailRe, g.tailPre}, {g.kwRe, g.kwPre}} {
			if p.re == nil {
				continue
			}
			bp := newByteProg(p.re)
			if bp == nil {
				t.Fatalf("%s: %s has no byteProg", g.id, p.re)
			}
			perRule := 0
			for _, d := range texts {
				for c := 0; c < len(d) && perRule < 150; c++ {
					if !prefixOK(p.pre, d[c:]) {
						continue
					}
					for _, l := range []int{64, 256} {
						in := d[c:min(len(d), c+l)]
						checkByteProg(t, g.id, p.re, bp, &s, in)
						checked++
						perRule++
						if p.re.Match(in) {
							matched++
						}
					}
				}
			}
		}
	}
	t.Logf("%d windows checked, %d with a match", checked, matched)
	if checked < 1000 || matched < minMatched {
		t.Fatalf("only %d windows checked, %d with a match", checked, matched)
	}
}

// FuzzByteProg compares byteProg and reachNFA with regexp on arbitrary
// input for the rules' anchored regexes and a few shapes of their own.
func FuzzByteProg(f *testing.F) {
	for _, s := range []string{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmn ",
		"glpat-abcdefghijklmnopqrstuvwxyz0123.01abcdefg", "AKIAIOSFODNN7EXAMPLE\"", "= 'sk_live_0123456789abcdefghij'",
		"xoxb-1234-5678-abcdefghijkl", "\u212aey=\xff", "hooks.slack.com/services/T0/B0/abc"} {
		f.Add([]byte(s))
	}
	set, err := defaultGitleaks()
	if err != nil {
		f.Fatal(err)
	}
	type rx struct {
		re *regexp.Regexp
		bp *byteProg
		rn *reachNFA
	}
	var rxs []rx
	for _, g := range set.rules {
		for _, re := range []*regexp.Regexp{g.anchored, g.tailRe, g.kwRe} {
			if re != nil {
				rxs = append(rxs, rx{re, newByteProg(re), newReachNFA(re.String())})
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 512 {
			in = in[:512]
		}
		sc := &scanner{}
		for _, r := range rxs {
			if r.bp != nil {
				checkByteProg(t, r.re.String(), r.re, r.bp, &sc.bt, in)
			}
			checkWithin(t, sc, r.re.String(), r.re, r.bp, r.rn, in)
		}
	})
}
