package sanitize

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzOnce sync.Once
	fuzzS    *Sanitizer
)

// fuzzSanitizer is shared across fuzz inputs: compiling 221 rules per input
// would swamp the fuzzer.
func fuzzSanitizer(t testing.TB) *Sanitizer {
	fuzzOnce.Do(func() {
		s, err := New(Config{PseudonymKey: testKey})
		if err != nil {
			t.Fatal(err)
		}
		fuzzS = s
	})
	return fuzzS
}

func addSeeds(f *testing.F) {
	f.Add([]byte(""))                                                                                           // empty input
	f.Add([]byte("mail bob@initech.io from 10.0.0.1 or 2001:db8::1"))                                           // PII in text
	f.Add([]byte(`{"password": "Orchid42!", "ssn": 123456789}`))                                                // JSON with key context and a number
	f.Add([]byte(`{"args": "{\"token\": \"` + fake(1, hexLower, 40) + `\"}"}`))                                 // JSON inside a JSON string
	f.Add([]byte("\"passwd\": \"Orchid641!"))                                                                   // unclosed quote
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\n" + fake(2, alnum, 70) + "\n-----END RSA PRIVATE KEY-----")) // PEM
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END"))                                                      // truncated PEM
	f.Add([]byte("id,name,password\n1,\"Ann, B\",x\"y\n2,Bo"))                                                  // CSV with quotes, ragged rows
	f.Add([]byte("+1 (415) 555-0100 +44 (0)20 7946 0958 (415"))                                                 // phone shapes, cut short
	f.Add([]byte("DE89 3704 0044 0532 0130 0 GB82WEST1234569876543"))                                           // IBAN shapes, wrong lengths
	f.Add([]byte("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0."))                                                      // JWT without signature
	f.Add([]byte("postgres://u:p@h postgres://:@ ://@:"))                                                       // URL edge cases
	f.Add([]byte("\\u003cemail:0123456789ab\\u003e <email:0123456789ab>"))                                      // token shapes
	f.Add([]byte("好的 👍 Привет مرحبا 4111 1111 1111 1111 é"))                                                    // multi-byte text around a card
	f.Add([]byte{0xff, 0xfe, '@', ':', ':', '1', 0x00, '\\'})                                                   // invalid UTF-8 and control bytes

	// Forms added after issue 10: cookie headers, lower-case IBANs,
	// separated hex and UTF-16 inside base64, each cut short or malformed.
	f.Add([]byte("Cookie: sid=\"a1B2c3D4e5; x=; =y;; Set-Cookie: \\\"s=" + fake(3, alnum, 20) + "\\\""))
	f.Add([]byte("iban gb82 west 1234 5698 7654 3 de89"))
	f.Add([]byte("k " + strings.Repeat("de:", 15) + "de-ad-be:ef:" + strings.Repeat("0a-", 16) + "0"))
	f.Add([]byte("-enc " + base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 'a', 0, 0x3d, 0xd8, 'b', 0, 0x00, 0xdc, 'c', 0, 'd', 0, 'e', 0, 'f'})))

	// IBANs grouped by dashes, tabs and JSON \t escapes, mixed and cut
	// short; a card column with and without a card word.
	f.Add([]byte(`{"iban":"DE89-3704\t0044\t0532 0130-00","id":"0a1b-ee43-3456-789012345678","x":"DE89\`))
	f.Add([]byte("de89\t3704\t-0044--0532-0130-00-\t"))
	f.Add([]byte("card:\n4147\n2000\n0000\n0005\n4000\n1234\n5678\n9010\r\n  4111\n1111"))
}

// FuzzScan: Scan never panics, and its findings are in range, non-empty,
// sorted and non-overlapping.
func FuzzScan(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzSanitizer(t)
		fs := s.Scan(data)
		for i, x := range fs {
			if x.Start < 0 || x.End > len(data) || x.Start >= x.End {
				t.Fatalf("finding %d out of range: %+v (len %d)", i, x, len(data))
			}
			if i > 0 && x.Start < fs[i-1].End {
				t.Fatalf("findings overlap or are unsorted: %+v", fs)
			}
			if !x.Category.Known() {
				t.Fatalf("unknown category %q", x.Category)
			}
		}
	})
}

// FuzzApply: Apply and Restore never panic; valid JSON stays valid JSON; a
// redacted finding's bytes are gone; Restore undoes pseudonymization.
func FuzzApply(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzSanitizer(t)
		isJSON := json.Valid(data)
		pseudoAll := Policy{Secrets: ActionPseudonymize, PII: ActionPseudonymize}
		for i, pol := range []Policy{pseudoAll, {Secrets: ActionRedact, PII: ActionRedact}, DefaultPolicy()} {
			c, err := s.Apply(peerA, pol, data)
			if err != nil {
				continue // blocked
			}
			out := c.Bytes()
			if isJSON && !json.Valid(out) {
				t.Fatalf("valid JSON in, invalid out:\nin  %q\nout %q", data, out)
			}
			back := s.Restore(peerA, out)
			if isJSON && !json.Valid(back) {
				t.Fatalf("Restore broke JSON:\nin  %q\nout %q", out, back)
			}
			// Text that was not JSON comes back byte for byte, unless the
			// pseudonyms made it JSON (a raw control character was replaced):
			// then Restore escapes for JSON, and the result stays JSON.
			outJSON := json.Valid(out)
			if !isJSON && outJSON && !json.Valid(back) {
				t.Fatalf("Restore broke JSON made by Apply:\nout  %q\nback %q", out, back)
			}
			if !isJSON && !outJSON && i == 0 && !bytes.Equal(back, data) && noTokenShapes(data) {
				t.Fatalf("round trip changed text:\nin   %q\nout  %q\nback %q", data, out, back)
			}
			r := s.DryRun(peerA, pol, data)
			if r.Action != c.Report().Strongest {
				t.Fatalf("DryRun action %s, Apply %s", r.Action, c.Report().Strongest)
			}
		}
	})
}

// noTokenShapes: text that already holds '<' may contain a token this node
// issued, which Restore rightly replaces.
func noTokenShapes(b []byte) bool {
	return bytes.IndexByte(b, '<') < 0 && !bytes.Contains(bytes.ToLower(b), []byte(`\u003c`))
}
