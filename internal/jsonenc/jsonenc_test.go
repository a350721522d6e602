package jsonenc

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestAppendStringIsMarshal(t *testing.T) {
	for _, s := range []string{"", "did:key:z6Mk", "a\"b", `back\slash`, "<tag>&", "tab\there", "é", "\u2028", "\x7f", "\xff"} {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, json.Marshal gives %s", s, got[1:], want)
		}
	}
}

func FuzzAppendStringIsMarshal(f *testing.F) {
	f.Add("plain")
	f.Add("<\"\\\x00é")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal gives %s", s, got, want)
		}
	})
}

func TestAppendStringEdges(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	for _, s := range []string{string(all), "\u2028\u2029x\u2027\u202a", "\xe2\x80", "\xe2\x80\xa8\xe2", "\xed\xa0\x80", "😀<😀>&", "\x00\x1f\b\f\n\r\t", "日本語\\\"", "\xf4\x90\x80\x80"} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, json.Marshal gives %s", s, got, want)
		}
	}
}

func TestAppendFloat64IsMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, -1e-9, 1.5e300, 0.001, 12.345}
	for range 2000 {
		vals = append(vals, math.Float64frombits(r.Uint64()), float64(r.Int64N(1e9))/1000, r.NormFloat64()*math.Pow(10, float64(r.IntN(60)-30)))
	}
	for _, f := range vals {
		want, err := json.Marshal(f)
		got, ok := AppendFloat64([]byte("x"), f)
		if (err == nil) != ok {
			t.Fatalf("AppendFloat64(%v): ok %v, json.Marshal error %v", f, ok, err)
		}
		if ok && string(got) != "x"+string(want) {
			t.Errorf("AppendFloat64(%v) = %s, json.Marshal gives %s", f, got[1:], want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, ok := AppendFloat64(nil, f); ok {
			t.Errorf("AppendFloat64(%v) ok, want refused", f)
		}
	}
}

var rawCases = []string{
	`{}`, `{"a":1}`, `{ "a" : [1, 2 ,3 ] }`, `"<b>&amp;</b>"`, `{"k":"\u003c"}`, "\"\u2028\u2029\"", "\"\xe2\x80\"",
	"\"\xff\xfe\"", `null`, ` null `, `[1,2`, ``, `{"a":1}x`, `{"a":1} `, "\t[ ]\n", `1e3`, `-0.5`, `"é日本"`, `{"a":{"b":[true,false,null]}}`,
	`{"x":"` + strings.Repeat("ab", 300) + `"}`, `[` + strings.Repeat(`[`, 80) + strings.Repeat(`]`, 80) + `]`, `{"a":"\"<"}`,
}

func checkRaw(t *testing.T, raw []byte) {
	t.Helper()
	want, werr := json.Marshal(json.RawMessage(raw))
	got, gerr := AppendRaw([]byte("x"), raw)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("AppendRaw(%q): error %v, json.Marshal error %v", raw, gerr, werr)
	}
	if werr == nil && string(got) != "x"+string(want) {
		t.Fatalf("AppendRaw(%q) = %s, json.Marshal gives %s", raw, got[1:], want)
	}
}

func TestAppendRawIsMarshal(t *testing.T) {
	for _, s := range rawCases {
		checkRaw(t, []byte(s))
	}
	checkRaw(t, nil)
}

func FuzzAppendRawIsMarshal(f *testing.F) {
	for _, s := range rawCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkRaw(t, raw) })
}
