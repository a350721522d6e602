package sanitize

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// checkValidJSON fails when validJSON and encoding/json disagree on d, or
// when the tokens of a valid d differ from jsonTokens'.
func checkValidJSON(t *testing.T, d []byte) {
	t.Helper()
	var toks []jsonTok
	got, want := validJSON(d, &toks), json.Valid(d)
	if got != want {
		t.Fatalf("validJSON(%q) = %v, encoding/json says %v", d, got, want)
	}
	if got && !slices.Equal(toks, jsonTokens(d)) {
		t.Fatalf("validJSON(%q) tokens %v, jsonTokens %v", d, toks, jsonTokens(d))
	}
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `{ }`, `[ ]`, `{"a":1}`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{1:2}`,
		`"x"`, `"x`, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\x"`, `"\u12g4"`, `"\u123"`, "\"a\x1fb\"", "\"\xff\xfe\"",
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.25e10`, `1.e1`,
		`true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, ` true `, "\ttrue\r\n", `true false`,
		`{"a":[1,2,{"b":null}],"c":"d"}`, `{"a":[1,2,{"b":null}],"c":"d"`, `[[[]]]`, `[[[]]`, `[]]`,
		`{"a":1}x`, "\xef\xbb\xbf{}", `{"a" : 1 , "b" : [ true , false ] }`, `[1 2]`, `{"a":1 "b":2}`,
		strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
		strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth),
		strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
	} {
		checkValidJSON(t, []byte(s))
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e3,"x\u0041"],"b":{"c":null,"d":true}}`, `[1,2`, `"\\"`, ` 0 `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) { checkValidJSON(t, d) })
}

// jsonTokens lists the strings and numbers of a valid JSON document in
// order, the plain way: the reference validJSON's tokens are checked against.
func jsonTokens(d []byte) []jsonTok {
	var toks []jsonTok
	for i := 0; i < len(d); {
		switch c := d[i]; {
		case c == '"':
			j := i + 1
			for j < len(d) && d[j] != '"' {
				if d[j] == '\\' {
					j++
				}
				j++
			}
			toks = append(toks, jsonTok{i, j + 1, true})
			i = j + 1
		case c == '-' || isDigit(c):
			j := i + 1
			for j < len(d) && (isDigit(d[j]) || d[j] == '.' || d[j] == 'e' || d[j] == 'E' || d[j] == '+' || d[j] == '-') {
				j++
			}
			toks = append(toks, jsonTok{i, j, false})
			i = j
		default:
			i++
		}
	}
	return toks
}
