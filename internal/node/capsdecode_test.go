package node

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDecodeCapsRefusesAmbiguousKeys: a peer's capability list that another
// JSON reader would read differently (a repeated key, or a key naming a
// field only under case folding, which encoding/json still matches) is
// refused, not read our way.
func TestDecodeCapsRefusesAmbiguousKeys(t *testing.T) {
	t.Parallel()
	good := `{"capabilities":[{"name":"echo","description":"d","input_schema":{"type":"object"},"stream":true},{"name":"b"}],"extra":{"x":1}}`
	caps, err := decodeCaps([]byte(good))
	if err != nil || len(caps) != 2 || caps[0].Name != "echo" || !caps[0].Stream || caps[1].Name != "b" {
		t.Fatalf("a plain list: %+v, %v", caps, err)
	}
	for _, bad := range []string{
		`{"capabilities":[],"capabilities":[{"name":"evil"}]}`,
		`{"capabilities":[{"name":"echo","name":"evil"}]}`,
		`{"Capabilities":[{"name":"evil"}]}`,
		`{"capabilities":[{"NAME":"evil"}]}`,
		`{"capabilities":[{"name":"a","ſtream":true}]}`, // long s folds onto s
		`{"capabilities":[{"name":"a","Input_Schema":{}}]}`,
		`{"capabilities":[{"name":"a","input_schema":{"type":"object","type":"string"}}]}`,
		`{"capabilities":[{"name":"a"}]} {}`,
	} {
		if caps, err := decodeCaps([]byte(bad)); err == nil {
			t.Errorf("%s: read as %+v, want refused", bad, caps)
		}
	}
}

// FuzzDecodeCaps: no answer crashes the parse, and an accepted one has no
// key that names a field only under case folding.
func FuzzDecodeCaps(f *testing.F) {
	f.Add([]byte(`{"capabilities":[{"name":"echo","description":"d","input_schema":{"type":"object"},"stream":true}]}`))
	f.Add([]byte(`{"capabilities":[{"name":"echo","name":"evil"}]}`))
	f.Add([]byte(`{"Capabilities":[{"name":"evil"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeCaps(b); err != nil {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(b, &top) != nil {
			return // null
		}
		folded := func(keys map[string]json.RawMessage, fields ...string) {
			for k := range keys {
				for _, f := range fields {
					if k != f && strings.EqualFold(k, f) {
						t.Fatalf("%q accepted with key %q", b, k)
					}
				}
			}
		}
		folded(top, "capabilities")
		var caps []map[string]json.RawMessage
		json.Unmarshal(top["capabilities"], &caps)
		for _, c := range caps {
			folded(c, "name", "description", "input_schema", "output_schema", "stream")
		}
	})
}
