package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/localapi"
)

// TestParseBodyRefusesAmbiguity: a body that encoding/json would read one
// way and its sender (or a log, or a check in front of the node) another is
// refused: duplicate keys, keys in another case or Unicode folding, bytes
// that are not UTF-8. Before, the last duplicate won and "Peer" was "peer".
func TestParseBodyRefusesAmbiguity(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"duplicate peer", `{"peer":"globex","capability":"echo","peer":"initech"}`, `"peer" given twice`},
		{"duplicate within", `{"peer":"a","capability":"c","within":"x","within":""}`, `"within" given twice`},
		{"escaped duplicate", `{"peer":"a","capability":"c","pe\u0065r":"b"}`, `"peer" given twice`},
		{"case-folded peer", `{"Peer":"globex","capability":"echo"}`, `key "Peer": write it "peer"`},
		{"case-folded capability", `{"peer":"globex","CAPABILITY":"echo"}`, `write it "capability"`},
		{"kelvin sign", "{\"peer\":\"a\",\"capability\":\"c\",\"within\":\"x\",\"\u212Aey\":1}", "unknown field"},
		{"long s", "{\"peer\":\"a\",\"capability\":\"c\",\"within\":\"x\",\"\u017Fomething\":1}", "unknown field"},
		{"folded to a field", "{\"peer\":\"a\",\"capability\":\"c\",\"in\u017Fide\":1}", "unknown field"},
		{"not UTF-8", "{\"peer\":\"glob\xffex\",\"capability\":\"echo\"}", "not UTF-8 (at byte 13)"},
		{"not UTF-8 in input", "{\"peer\":\"a\",\"capability\":\"c\",\"input\":\"\xc0\xaf\"}", "not UTF-8"},
		{"trailing", `{"peer":"a","capability":"c"} {}`, "trailing data"},
		{"huge number", `{"peer":"a","capability":"c","input":{"n":1e999999}}`, ""},
		{"deep", `{"peer":"a","capability":"c","input":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "exceeded max depth"},
		{"NUL byte", "{\"peer\":\"a\x00\",\"capability\":\"c\"}", "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req localapi.CallRequest
			err := parseBody([]byte(tc.body), &req)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q (req %+v)", err, tc.want, req)
			}
		})
	}
	// A nested object may repeat keys: it is the capability's input, passed
	// on as given; only the request's own keys decide anything here.
	var req localapi.CallRequest
	if err := parseBody([]byte(`{"peer":"a","capability":"c","input":{"k":1,"k":2,"K":3}}`), &req); err != nil {
		t.Fatal(err)
	}
	// Each request type's keys are checked, not only the call's.
	var ts localapi.TrustSetRequest
	if err := parseBody([]byte(`{"peer":"a","Lift":true}`), &ts); err == nil {
		t.Fatal(`"Lift" accepted for "lift"`)
	}
}

// FuzzParseBody: no body crashes parseBody, and one it accepts is UTF-8,
// has no key twice and no key but the documented ones.
func FuzzParseBody(f *testing.F) {
	// More seeds in testdata/fuzz/FuzzParseBody.
	f.Add([]byte(`{"peer":"globex","capability":"echo","input":{"text":"hi"},"within":"00"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req localapi.CallRequest
		if parseBody(body, &req) != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a body that is not an object: %q", body)
		}
		names := fieldNames(reflectCallRequest)
		keys := 0
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.Token()
		for dec.More() {
			tok, _ := dec.Token()
			if !names[tok.(string)] {
				t.Fatalf("accepted key %q", tok)
			}
			keys++
			var skip json.RawMessage
			dec.Decode(&skip)
		}
		if keys != len(m) {
			t.Fatalf("accepted a duplicate key: %q", body)
		}
	})
}

// FuzzParams: no query crashes params, and one it accepts has each parameter
// once, in UTF-8, as url.ParseQuery reads it.
func FuzzParams(f *testing.F) {
	for _, q := range []string{"peer=globex", "group=g&key=k", "peer=a&peer=b", "peer=%zz", "peer=%ff", "a=1;b=2", "=&=", "prefix="} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{URL: &url.URL{RawQuery: raw}}
		q, err := params(r)
		if err != nil {
			return
		}
		want, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("accepted %q, which ParseQuery refuses", raw)
		}
		for name, vs := range want {
			if len(vs) != 1 || !utf8.ValidString(name) || !utf8.ValidString(vs[0]) || q.Get(name) != vs[0] {
				t.Fatalf("accepted %q: %q = %q", raw, name, vs)
			}
		}
	})
}

// TestTopKeysAgreesWithTheDecoder: the one-pass key reader finds the same
// top-level keys as encoding/json's tokenizer, escapes and values that hold
// quotes, brackets and backslashes included.
func TestTopKeysAgreesWithTheDecoder(t *testing.T) {
	for _, body := range []string{
		`{}`, ` { "a" : 1 , "b":[1,{"c":"}]\"{"}], "d":{"e":{"f":[]}}, "g":"x\\"}`,
		`{"pe\u0065r":"x","peer":"y"}`, `{"a":"\\\"","b":true,"c":null,"d":-1.5e3}`,
		`{"a":[[["]"]]],"a":0}`, `{"\ud83d\ude00":1}`, `{"a":"\t"}`,
	} {
		var want []string
		dec := json.NewDecoder(strings.NewReader(body))
		dec.Token()
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			want = append(want, tok.(string))
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
		}
		var got []string
		topKeys([]byte(body), func(k string) error { got = append(got, k); return nil })
		if !slices.Equal(got, want) {
			t.Errorf("%s: keys %q, want %q", body, got, want)
		}
	}
}

// BenchmarkParseBody: a 1 KiB call body through parseBody, against plain
// json.Unmarshal of the same bytes (the cost of refusing ambiguity).
func BenchmarkParseBody(b *testing.B) {
	body := []byte(`{"peer":"globex","capability":"echo","input":{"blob":"` + strings.Repeat("x", 1000) + `"}}`)
	b.Run("parseBody", func(b *testing.B) {
		for b.Loop() {
			var req localapi.CallRequest
			if err := parseBody(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		for b.Loop() {
			var req localapi.CallRequest
			if err := json.Unmarshal(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
