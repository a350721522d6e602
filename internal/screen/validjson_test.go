package screen

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

var validJSONSeeds = []string{
	``, ` `, `{}`, `[]`, `""`, `"a"`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e5`, `1E+5`, `1e`, `.5`, `-a`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, ` {"a" : [1, 2.5e-3, "x\n", true, false, null, {}] } `,
	`{"a":1,}`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `[1 2]`, `{"a":1}}`, `[[]`, `[]]`,
	`"\u00e9\ud83d\ude00"`, `"\u00g0"`, `"\u12"`, `"\x"`, `"\/\b\f\r\t\"\\"`, "\"a\tb\"", "\"\x7f\xff\xfe\"",
	`"unterminated`, `"\`, `{"a":"b"`, `[` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 71),
	strings.Repeat(`{"a":`, 80) + `1` + strings.Repeat(`}`, 80), strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
	"\ufeff{}", "{}\x00", "[1]\n\r\t ", "\v[]",
}

// validJSON must agree with json.Valid on every input: it decides whether the screen
// reads a payload as JSON.
func TestValidJSONMatchesStdlib(t *testing.T) {
	for _, s := range validJSONSeeds {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%.80q) = %v, json.Valid %v", s, got, want)
		}
	}
	// Valid documents, then each with one byte changed, dropped or repeated.
	r := rand.New(rand.NewPCG(9, 10))
	alphabet := []byte(`{}[]":,0123456789-+.eEtrufalsn \t\r\n\\/bu` + "\x00\x1f\x80")
	for range 30000 {
		doc := []byte(randomJSON(r, 0))
		if !validJSON(doc) || !json.Valid(doc) {
			t.Fatalf("generated document %q: validJSON %v, json.Valid %v", doc, validJSON(doc), json.Valid(doc))
		}
		if len(doc) == 0 {
			continue
		}
		k := r.IntN(len(doc))
		var mut []byte
		switch r.IntN(3) {
		case 0:
			mut = append(append(append(mut, doc[:k]...), alphabet[r.IntN(len(alphabet))]), doc[k+1:]...)
		case 1:
			mut = append(append(mut, doc[:k]...), doc[k+1:]...)
		default:
			mut = append(append(append(mut, doc[:k+1]...), doc[k]), doc[k+1:]...)
		}
		if got, want := validJSON(mut), json.Valid(mut); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", mut, got, want)
		}
	}
}

func randomJSON(r *rand.Rand, depth int) string {
	ws := func() string { return []string{"", "", " ", "\n", "\t ", "\r\n"}[r.IntN(6)] }
	switch k := r.IntN(9); {
	case k < 2 && depth < 5:
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, ws()+randomJSON(r, depth+1)+ws())
		}
		return "[" + strings.Join(parts, ",") + "]"
	case k < 4 && depth < 5:
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, ws()+`"k\u00e9y"`+ws()+":"+ws()+randomJSON(r, depth+1)+ws())
		}
		return "{" + strings.Join(parts, ",") + "}"
	case k == 4:
		return []string{`""`, `"plain"`, `"esc \" \\ \/ \b \f \n \r \t \u0041"`, `"ünïcode"`}[r.IntN(4)]
	case k == 5:
		return []string{"0", "-0", "12", "-3.25", "1e9", "2.5E-7", "6e+1"}[r.IntN(7)]
	default:
		return []string{"true", "false", "null"}[r.IntN(3)]
	}
}

// FuzzValidJSON compares validJSON with json.Valid on any bytes.
func FuzzValidJSON(f *testing.F) {
	for _, s := range validJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", data, got, want)
		}
	})
}
