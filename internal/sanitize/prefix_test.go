package sanitize

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// checkPrefix fails when expr, run anchored, matches in but prefixSets
// would have turned in away.
func checkPrefix(t *testing.T, expr string, in []byte) {
	t.Helper()
	re, err := regexp.Compile(`^(?:` + expr + `)`)
	if err != nil {
		return
	}
	sets := prefixSets(`^(?:` + expr + `)`)
	if re.Match(in) && !prefixOK(sets, in) {
		t.Fatalf("^(?:%s) matches %q but prefixSets %v turn it away", expr, in, sets)
	}
}

func TestPrefixSetsSound(t *testing.T) {
	for _, c := range []struct{ expr, in string }{
		{`(?i)k`, "\u212a"}, {`(?i)s+x`, "\u017fx"}, {`(?i)ks`, "K\u017f"}, {`\bfoo`, "foo"},
		{`a|bc`, "a"}, {`a|bc`, "bc"}, {`é`, "é"}, {`.x`, "éx"}, {`(?s).x`, "\nx"}, {`a*b`, "b"},
		{`x?yz`, "yz"}, {`$a`, "a"}, {`[^a]b`, "\xffb"}, {`[^a]b`, "éb"}, {`\x{FFFD}z`, "\xffz"},
		{`(?i)AKIA[0-9A-Z]{4}`, "akia1234"}, {`(a|ab)(c|bcd)`, "abcd"}, {`ab{0,3}c`, "ac"},
		{`\Ax\z`, "x"}, {`(?m)^x$`, "x"}, {`[[:^alpha:]]q`, "éq"}, {`\pLq`, "éq"},
	} {
		checkPrefix(t, c.expr, []byte(c.in))
	}
	// The rules as they run: every match the unanchored rule finds in the
	// corpus starts where its prefix sets let the anchored rule run.
	set, err := defaultGitleaks()
	if err != nil {
		t.Fatal(err)
	}
	n, want := 600, 100
	if raceEnabled {
		n, want = 40, 10 // the regexes run many times slower under the race detector
	}
	texts := corpusTexts(t, n)
	checked := 0
	for _, g := range set.rules {
		if g.anchored == nil {
			continue
		}
		for _, d := range texts {
			for _, m := range g.re.FindAllIndex(d, -1) {
				if g.anchored.Match(d[m[0]:]) && !prefixOK(g.anchoredPre, d[m[0]:]) {
					t.Fatalf("rule %s matches %q but its prefix sets turn it away", g.id, d[m[0]:m[1]])
				}
				checked++
			}
		}
	}
	if checked < want {
		t.Fatalf("only %d rule matches in the corpus checked", checked)
	}
}

func TestPrefixSetsTurnAway(t *testing.T) {
	sets := prefixSets(`^(?:\b(AIza[\w-]{35})(?:[\x60'"\s;]|\\[nr]|$))`)
	if len(sets) != maxPrefix {
		t.Fatalf("got %d sets, want %d", len(sets), maxPrefix)
	}
	for _, in := range []string{"AIz", "AIzb1234", "aiza1234", "AIza12 4"} {
		if prefixOK(sets, []byte(in)) {
			t.Errorf("%q passes the prefix sets of a GCP key", in)
		}
	}
	if !prefixOK(sets, []byte("AIzaSyD-abcd")) {
		t.Error("a GCP key's start is turned away")
	}
	if s := startPrefix(`foo|^bar`); s != nil {
		t.Errorf("startPrefix of a regex not anchored at the start: %v", s)
	}
}

func FuzzPrefixSets(f *testing.F) {
	for _, s := range [][2]string{{`(?i)ab+c`, "ABBC"}, {`\bx[0-9]{2,}`, "x12"}, {`.é|k`, "\u212a"}, {`a?$b`, "b"}} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, expr string, in []byte) {
		if len(expr) > 64 {
			return
		}
		checkPrefix(t, expr, in)
	})
}

// corpusTexts reads the texts of the first n records of the labelled corpus.
func corpusTexts(t *testing.T, n int) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/corpus/pii-secrets.dev.jsonl")
	if err != nil {
		t.Fatalf("the corpus ships with the repository: %v", err)
	}
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		var r struct{ Text string }
		if json.Unmarshal(line, &r) != nil {
			continue
		}
		if out = append(out, []byte(r.Text)); len(out) == n {
			break
		}
	}
	return out
}

// checkAlphabet fails when expr matches in but wholeAlphabet would have
// turned in away.
func checkAlphabet(t *testing.T, expr string, in []byte) {
	t.Helper()
	re, err := regexp.Compile(expr)
	if err != nil {
		return
	}
	if abc := wholeAlphabet(expr); re.Match(in) && !within(abc, in) {
		t.Fatalf("%s matches %q but its alphabet turns it away", expr, in)
	}
}

func TestWholeAlphabet(t *testing.T) {
	for _, c := range []struct{ expr, in string }{
		{`^(?i:a+|b+)$`, "AAA"}, {`^(?i:k+)$`, "k\u212ak"}, {`^(?i:s+)$`, "\u017f"}, {`^.+$`, "é\xff"},
		{`^\$(?:\d+|{\d+})$`, "${12}"}, {`^[^a]+$`, "é"}, {`^(x)$`, "x"}, {`\A\d\z`, "7"},
	} {
		checkAlphabet(t, c.expr, []byte(c.in))
	}
	abc := wholeAlphabet(`^(?i:a+|b+|\*+)$`)
	if abc == nil || within(abc, []byte("aab1")) || !within(abc, []byte("AbB*")) {
		t.Fatalf("alphabet of a fully anchored regex: %v", abc)
	}
	for _, expr := range []string{`^a+`, `a+$`, `(?m)^a+$`, `^a|b$`, `x`} {
		if wholeAlphabet(expr) != nil {
			t.Errorf("wholeAlphabet(%q) is not nil, but a match need not span the input", expr)
		}
	}
}

func FuzzWholeAlphabet(f *testing.F) {
	for _, s := range [][2]string{{`^(?i:ab+c)$`, "ABBC"}, {`^\w+$`, "x_1"}, {`^(?:.é|k)$`, "\u212a"}, {`^a?$`, ""}} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, expr string, in []byte) {
		if len(expr) > 64 {
			return
		}
		checkAlphabet(t, expr, in)
	})
}
