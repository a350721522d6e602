package wire

import "testing"

// A failure envelope comes from a peer; if its keys repeat, or a key matches
// a field only case-insensitively (as encoding/json matches "Stage" or
// "ſtage" to stage), two parsers can read different stages or reasons from
// the same bytes. DecodeFailure refuses it instead of picking one reading.
func TestDecodeFailureRefusesAmbiguousKeys(t *testing.T) {
	bad := map[string]string{
		"duplicate stage":               `{"stage":"wire","reason":"x","stage":"policy"}`,
		"duplicate reason":              `{"stage":"wire","reason":"replayed","reason":"expired"}`,
		"duplicate limit":               `{"stage":"wire","reason":"limit_exceeded","limit":{"limit":"max_body_bytes","max":1,"got":1},"limit":{"limit":"max_header_bytes","max":1,"got":1}}`,
		"duplicate limit.max":           `{"stage":"wire","reason":"limit_exceeded","limit":{"limit":"max_body_bytes","max":1,"max":2,"got":1}}`,
		"duplicate unknown":             `{"stage":"wire","reason":"x","future":1,"future":2}`,
		"duplicate nested unknown":      `{"stage":"wire","reason":"x","future":[{"a":1,"a":2}]}`,
		"case-folded stage":             `{"stage":"wire","reason":"x","Stage":"policy"}`,
		"case-folded only":              `{"STAGE":"wire","reason":"x"}`,
		"unicode-folded stage":          `{"stage":"wire","reason":"x","ſtage":"policy"}`,
		"case-folded limit.max":         `{"stage":"wire","reason":"limit_exceeded","limit":{"limit":"max_body_bytes","MAX":1,"got":1}}`,
		"escaped duplicate":             `{"stage":"wire","reason":"x","st\u0061ge":"policy"}`,
		"duplicate after a huge number": `{"stage":"wire","reason":"x","future":1e400,"stage":"policy"}`,
		"duplicate after a tiny number": `{"stage":"wire","reason":"x","future":-1e400,"stage":"policy"}`,
	}
	for name, s := range bad {
		t.Run(name, func(t *testing.T) {
			f, err := DecodeFailure([]byte(s))
			if err == nil {
				t.Fatalf("DecodeFailure(%s) accepted as %+v", s, f)
			}
			wantReason(t, err, ReasonMalformed)
		})
	}
	good := []string{
		`{"stage":"wire","reason":"x","future":{"stage":1,"Stage":2}}`, // nested unknown fields are not ours to fold
		`{"stage":"wire","reason":"x","future":[{"a":1},{"a":2}]}`,
		`{"stage":"wire","reason":"limit_exceeded","limit":{"limit":"max_body_bytes","max":1,"got":1,"stage":"x"}}`,
	}
	for _, s := range good {
		if _, err := DecodeFailure([]byte(s)); err != nil {
			t.Errorf("DecodeFailure(%s) = %v, want accepted", s, err)
		}
	}
}
