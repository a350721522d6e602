package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dunglas/httpsfv"
)

// fuzzRequest is the fixed, validly signed request the request fuzzer
// mutates; it is rebuilt identically on every run.
func fuzzRequest(t testing.TB) (keys, Sent) {
	k := testKeys(t)
	_, sent := signedRequest(t, k, testBody, nil)
	return k, sent
}

// requestSeeds are (Signature-Input, Signature, Content-Digest, body) seeds,
// one comment per edge case.
func requestSeeds(t testing.TB) [][4]string {
	k, s := fuzzRequest(t)
	other := signatureHeader(Label, k.mallory.Sign([]byte(s.Base)))
	return [][4]string{
		{s.SignatureInput, s.Signature, s.ContentDigest, string(testBody)},                                                        // valid
		{s.SignatureInput, s.Signature, s.ContentDigest, string(testBody) + " "},                                                  // body changed
		{s.SignatureInput, other, s.ContentDigest, string(testBody)},                                                              // wrong signer
		{s.SignatureInput, s.Signature + ", " + s.Signature, s.ContentDigest, string(testBody)},                                   // duplicate label
		{s.SignatureInput + ", x=()", s.Signature, s.ContentDigest, string(testBody)},                                             // second label
		{strings.Replace(s.SignatureInput, "(", "(\"@method\";sf ", 1), s.Signature, s.ContentDigest, ""},                         // unsupported param
		{`treaty=("@method"`, `treaty=:AAAA`, `sha-256=:`, ""},                                                                    // truncated fields
		{`treaty=()`, `treaty=:` + strings.Repeat("A", 86) + `==:`, `sha-512=:AAAA:`, ""},                                         // empty list, short digest
		{`treaty=("signature";req;key="treaty");created=1`, s.Signature, `sha-256=?1`, ""},                                        // req on a request
		{strings.Replace(s.SignatureInput, "created=1750000000", "created=999999999999999", 1), s.Signature, s.ContentDigest, ""}, // huge time
		{`treaty=("@method" "@method")`, `treaty=:` + "AA==" + `:`, "sha-256=:" + strings.Repeat("A", 43) + "=:, sha-256=:AA==:", ""},
		{"treaty=(\"\xff\")", "treaty=%\"\xff\"", "sha-256=@1", "\x00"}, // invalid UTF-8, display string, date
		{"", "", "", ""}, // all absent
	}
}

func FuzzVerifyRequest(f *testing.F) {
	for _, s := range requestSeeds(f) {
		f.Add(s[0], s[1], s[2], []byte(s[3]))
	}
	k, sent := fuzzRequest(f)
	signed, _ := signedRequest(f, k, testBody, nil) // identical to sent: same seeded nonce
	f.Fuzz(func(t *testing.T, sigInput, sig, digest string, body []byte) {
		sr := serverView(t, signed)
		for name, v := range map[string]string{HeaderSignatureInput: sigInput, HeaderSignature: sig, HeaderContentDigest: digest} {
			if v == "" {
				sr.Header.Del(name)
			} else {
				sr.Header.Set(name, v)
			}
		}
		v := newVerifier(t, k.bob.Public())
		_, err := v.VerifyRequest(sr, body, k.alice.Public(), t0)
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("untyped error %v", err)
			}
			// Every refusal can be signed, whatever the request carried, and
			// is bound to no signature alice did not make.
			bound := v.UnverifiedRequest(sr, k.alice.Public())
			if bound.Signature != NoRequestSignature && bound.Signature != sent.Signature {
				t.Fatalf("refusal bound to %q, which alice did not sign", bound.Signature)
			}
			if serr := SignResponse(http.Header{}, StatusFor(err), EncodeFailure(FailureOf("wire", err)), bound, k.bob, t0); serr != nil {
				t.Fatalf("refusal of %v cannot be signed: %v", err, serr)
			}
			return
		}
		// Only the exact signed request may pass.
		if sigInput != sent.SignatureInput || sig != sent.Signature || digest != sent.ContentDigest || !bytes.Equal(body, testBody) {
			t.Fatalf("accepted a modified request:\n%q\n%q\n%q\n%q", sigInput, sig, digest, body)
		}
	})
}

func contentDigestSeeds() []string {
	return []string{
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", // RFC 9530 {"hello": "world"}
		rfcRequestSHA512, // RFC 9421 B.2
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, " + rfcRequestSHA512, // both
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-256=:AAAA:",      // duplicate key
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:;p=1",                  // parameters
		"md5=:AAAA:, unixsum=:AAAA:",                                                  // no supported algorithm
		"sha-256=(:AA==:)",                                                            // inner list
		"sha-256",                                                                     // boolean
		"SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",                      // uppercase key
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:",                       // bad padding
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:,",                     // trailing comma
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:  ,sha-512=:AA==:",     // odd spacing
		"",
	}
}

func FuzzParseContentDigest(f *testing.F) {
	for _, s := range contentDigestSeeds() {
		f.Add(s, []byte(rfcRequestBody))
	}
	f.Fuzz(func(t *testing.T, v string, body []byte) {
		cd, err := ParseContentDigest(v)
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if cd.SHA256 == nil && cd.SHA512 == nil {
			t.Fatal("parsed a digest with no supported algorithm")
		}
		if err := cd.Check(body); err != nil {
			if r, _ := ReasonOf(err); r != ReasonDigestMismatch {
				t.Fatalf("Check: %v", err)
			}
		}
		// What treaty sends for body always parses and matches it.
		own, err := ParseContentDigest(ContentDigestHeader(body))
		if err != nil || own.Check(body) != nil {
			t.Fatalf("own digest: %v", err)
		}
	})
}

// streamSeed is a valid 3-event stream (the fixture's lines joined).
func streamSeed(t testing.TB) (string, Sent, []string) {
	k := testKeys(t)
	r, sent := signedRequest(t, k, testBody, nil)
	req, err := newVerifier(t, k.bob.Public()).VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewStreamWriter(&buf, nil, req, k.bob)
	var data []string
	for i := 1; i <= 3; i++ {
		d := fmt.Sprintf(`{"obs":%d}`, i)
		data = append(data, d)
		if err := w.Write(json.RawMessage(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(nil); err != nil {
		t.Fatal(err)
	}
	return buf.String(), sent, data
}

func streamSeeds(t testing.TB) []string {
	valid, _, _ := streamSeed(t)
	lines := strings.SplitAfter(valid, "\n")
	return []string{
		valid,               // valid
		lines[0] + lines[2], // gap
		lines[0] + lines[1] + lines[1] + lines[2] + lines[3], // duplicate
		lines[0] + lines[1] + lines[0],                       // reorder
		lines[0] + lines[1] + lines[2],                       // truncated before End
		valid[:len(valid)-5],                                 // truncated inside End
		valid + "{}\n",                                       // data after End
		strings.Replace(valid, `"obs":2`, `"obs":3`, 1),      // tampered data
		"{\"seq\":1,\"data\":1,\"seq\":2}\n",                 // duplicate keys
		"{\"seq\":18446744073709551616}\n",                   // seq overflow
		"{\"SEQ\":1,\"Data\":[]}\n",                          // case-folded keys
		"\n\n",                                               // blank lines
		"",                                                   // empty
		strings.Replace(valid, `{"seq":1,`, `{"seq":1, `, 1), // non-canonical data line, End otherwise valid
	}
}

func FuzzStreamReader(f *testing.F) {
	for _, s := range streamSeeds(f) {
		f.Add([]byte(s), uint16(0), uint8(0))
	}
	_, sent, data := streamSeed(f)
	callee := testKey(f, 2).Public()
	f.Fuzz(func(t *testing.T, stream []byte, maxEventBytes uint16, maxEvents uint8) {
		lim := Limits{MaxEventBytes: int64(maxEventBytes), MaxStreamEvents: int(maxEvents)}
		r := NewStreamReader(bytes.NewReader(stream), sent, callee, lim)
		var got []string
		for range 1000 {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				// Verified: exactly the signed data events, in order.
				if strings.Join(got, "\n") != strings.Join(data, "\n") {
					t.Fatalf("verified stream delivered %q, signed %q", got, data)
				}
				return
			}
			if err != nil {
				var le *LimitError
				if _, ok := ReasonOf(err); !ok && !errors.As(err, &le) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if !ev.End {
				got = append(got, string(ev.Data))
			}
		}
		t.Fatal("reader did not terminate")
	})
}

func failureSeeds() []string {
	return []string{
		`{"stage":"wire","reason":"replayed"}`,
		`{"stage":"wire","reason":"limit_exceeded","limit":{"limit":"max_body_bytes","max":1048576,"got":-1}}`,
		`{"stage":"wire","reason":"x","future":{"a":[1,2]}}`,                                                    // unknown field
		`{"stage":"wire","reason":"x","stage":"policy"}`,                                                        // duplicate key
		`{"Stage":"wire","REASON":"x"}`,                                                                         // case-folded keys
		`{"stage":"wire","reason":"x","ſtage":"policy"}`,                                                        // key folded onto stage by Unicode case folding
		`{"stage":"wire","reason":"x","st\u0061ge":"y"}`,                                                        // duplicate key spelled with an escape
		`{"stage":"wire","reason":"limit_exceeded","limit":{"limit":"max_body_bytes","max":1,"max":2,"got":1}}`, // duplicate key in limit
		`{"stage":"wire","reason":"x","future":[{"a":1,"a":2}]}`,
		`{"stage":"wire","reason":"x","future":1e400,"stage":"policy"}`, // a number out of float64's range before a duplicate                                                // duplicate key in an unknown field
		`{"stage":"wire","reason":"x"}{"stage":"a","reason":"b"}`,
		`{"stage":"wire","reason":"\u0000"}`,
		`{"stage":"wire","reason":"x","limit":{"limit":"m","max":1e300,"got":1}}`,
		`{"stage":"wire","reason":"x","limit":null}`,
		`null`, `[]`, `"x"`, ``,
	}
}

func FuzzDecodeFailure(f *testing.F) {
	for _, s := range failureSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := DecodeFailure(b)
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := DecodeFailure(EncodeFailure(fl))
		if err != nil {
			t.Fatalf("re-decoding the encoding of an accepted failure: %v", err)
		}
		if again.Stage != fl.Stage || again.Reason != fl.Reason || (again.Limit == nil) != (fl.Limit == nil) ||
			(fl.Limit != nil && *again.Limit != *fl.Limit) {
			t.Fatalf("round trip %+v -> %+v", fl, again)
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz from the seeds above when
// WIRE_WRITE_CORPUS=1; otherwise it checks the committed corpus exists.
func TestWriteFuzzCorpus(t *testing.T) {
	corpora := map[string][][]string{}
	for _, s := range requestSeeds(t) {
		corpora["FuzzVerifyRequest"] = append(corpora["FuzzVerifyRequest"],
			[]string{"string(" + strconv.Quote(s[0]) + ")", "string(" + strconv.Quote(s[1]) + ")", "string(" + strconv.Quote(s[2]) + ")", "[]byte(" + strconv.Quote(s[3]) + ")"})
	}
	for _, s := range contentDigestSeeds() {
		corpora["FuzzParseContentDigest"] = append(corpora["FuzzParseContentDigest"],
			[]string{"string(" + strconv.Quote(s) + ")", "[]byte(" + strconv.Quote(rfcRequestBody) + ")"})
	}
	for i, s := range streamSeeds(t) {
		corpora["FuzzStreamReader"] = append(corpora["FuzzStreamReader"],
			[]string{"[]byte(" + strconv.Quote(s) + ")", fmt.Sprintf("uint16(%d)", []int{0, 128}[i%2]), fmt.Sprintf("byte(%q)", rune([]int{0, 2}[i%2]))})
	}
	for _, s := range canonicalSeeds {
		corpora["FuzzCanonicalDict"] = append(corpora["FuzzCanonicalDict"], []string{"string(" + strconv.Quote(s) + ")"})
	}
	for _, s := range failureSeeds() {
		corpora["FuzzDecodeFailure"] = append(corpora["FuzzDecodeFailure"], []string{"[]byte(" + strconv.Quote(s) + ")"})
	}
	for _, s := range chainSeeds(t) {
		corpora["FuzzParseChain"] = append(corpora["FuzzParseChain"], []string{"string(" + strconv.Quote(s) + ")"})
	}
	for _, s := range receiptSeeds(t) {
		corpora["FuzzReceiptVerify"] = append(corpora["FuzzReceiptVerify"], []string{"[]byte(" + strconv.Quote(s) + ")"})
	}
	write := os.Getenv("WIRE_WRITE_CORPUS") == "1"
	for name, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if !write {
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) < len(seeds) {
				t.Errorf("%s: %d corpus files, want >= %d (run with WIRE_WRITE_CORPUS=1)", dir, len(entries), len(seeds))
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range seeds {
			content := "go test fuzz v1\n" + strings.Join(args, "\n") + "\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzCanonicalDict checks the fast paths against httpsfv: serializeDict
// must equal httpsfv.Marshal whenever it answers, and fastByteMember must
// accept only what parseDict accepts, with the same bytes.
func FuzzCanonicalDict(f *testing.F) {
	for _, s := range requestSeeds(f) {
		f.Add(s[0])
		f.Add(s[1])
		f.Add(s[2])
	}
	for _, s := range contentDigestSeeds() {
		f.Add(s)
	}
	for _, s := range canonicalSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		checkCanonical(t, v)
	})
}

// canonicalSeeds are inputs on which a fast path that skipped one of its
// checks would disagree with httpsfv.
var canonicalSeeds = []string{
	`a=1, b=2;x=1;y=2, c=(a b c), d, e=?0;k="\"\\", f=:AA==:, g=-999999999999999`,
	`a=1000000000000000`,
	`a="` + "\x7f" + `"`,
	`a=1.5, b=tok, c=@1659578233, d=%"caf%c3%a9"`,
	`treaty=("@status" "content-digest" "signature";req;key="treaty");created=1;alg="ed25519";keyid="k";tag="treaty/1"`,
	`treaty=("a";key="b";req "c");expires=0;nonce="n"`,
	`treaty=()`,
	`treaty=();created=01`,
	`treaty=("@method";key="a")`,                       // key on a derived component
	`treaty=("a");created=1;created=2`,                 // repeated parameter
	`treaty=("a");nonce="a\\"`,                         // escaped backslash
	`treaty=("A")`,                                     // uppercase component name
	`treaty=("a" "a")`,                                 // repeated component
	`treaty=("a";req;req)`,                             // repeated component parameter
	`A=:AA==:`,                                         // not a structured-field key
	`sha-256=:AA==:`,                                   // short digest
	`treaty=:AA=:`, `treaty=:AB==:`, "treaty=:AA==\n:", // bad padding, non-zero bits, newline
}

func checkCanonical(t *testing.T, v string) {
	t.Helper()
	for _, label := range []string{Label, "sig-b26", "reqres"} {
		fast, ok := fastSignatureInput(v, label)
		if !ok {
			continue
		}
		slow, err := slowSignatureInput(v, label)
		if err != nil {
			t.Fatalf("fastSignatureInput accepted %q, httpsfv path refused: %v", v, err)
		}
		if len(fast.comps) == 0 {
			fast.comps = nil
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fastSignatureInput(%q)\n = %+v\nhttpsfv path\n = %+v", v, fast, slow)
		}
	}
	if d, err := httpsfv.UnmarshalDictionary([]string{v}); err == nil {
		if fast, ok := serializeDict(d); ok {
			slow, err := httpsfv.Marshal(d)
			if err != nil || fast != slow {
				t.Fatalf("serializeDict(%q) = %q, httpsfv.Marshal = %q, %v", v, fast, slow, err)
			}
		}
	}
	for _, key := range []string{Label, "sha-256", "sha-512", "a", "A"} {
		b, ok := fastByteMember(v, key, -1)
		if !ok {
			continue
		}
		d, err := parseDict("x", v)
		if err != nil {
			t.Fatalf("fastByteMember accepted %q, parseDict refused: %v", v, err)
		}
		m, err := onlyMember("x", d, key)
		if err != nil {
			t.Fatalf("fastByteMember accepted %q as %q: %v", v, key, err)
		}
		it, _ := m.(httpsfv.Item)
		if got, _ := it.Value.([]byte); !bytes.Equal(got, b) || len(it.Params.Names()) != 0 {
			t.Fatalf("fastByteMember(%q) = %x, parseDict = %+v", v, b, it)
		}
	}
	// ParseContentDigest's fast path agrees with its general path.
	if cd, err := ParseContentDigest(v); err == nil {
		if cd.SHA256 == nil && cd.SHA512 == nil {
			t.Fatalf("ParseContentDigest(%q) has no digest", v)
		}
	} else if _, ok := fastByteMember(v, "sha-256", 32); ok {
		t.Fatalf("ParseContentDigest(%q) refused what its fast path accepts: %v", v, err)
	}
}

func TestSerializeMatchesHTTPSFV(t *testing.T) {
	k := testKeys(t)
	_, sent := signedRequest(t, k, testBody, nil)
	for _, v := range append([]string{sent.SignatureInput, sent.Signature, sent.ContentDigest}, canonicalSeeds...) {
		checkCanonical(t, v)
	}
	for _, b := range [][]byte{nil, {0}, make([]byte, 64), []byte(rfcRequestBody)} {
		d := httpsfv.NewDictionary()
		d.Add("sha-256", httpsfv.NewItem(b))
		want, err := httpsfv.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := byteMember("sha-256", b); got != want {
			t.Fatalf("byteMember = %q, httpsfv = %q", got, want)
		}
	}
}
