package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/refusal"
)

// FuzzCheckInput: any JSON a peer sends either matches the schema or is
// refused at stage screen with an input_schema reason; never a panic.
func FuzzCheckInput(f *testing.F) {
	for _, s := range []string{`{"q":"x"}`, `{}`, `{"q":7}`, `[1,2]`, `"s"`, `null`, `{"q":"x","n":[{"a":{}}]}`, `1e999`} {
		f.Add([]byte(s))
	}
	cp := &capability{Info: CapabilityInfo{InputSchema: map[string]any{
		"type":                 "object",
		"required":             []any{"q"},
		"additionalProperties": false,
		"properties": map[string]any{
			"q": map[string]any{"type": "string", "maxLength": 8, "pattern": "^[a-z]*$"},
			"n": map[string]any{"type": "array", "items": map[string]any{"type": "object"}, "maxItems": 3},
		},
	}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // refused earlier, at stage wire
		}
		err := cp.checkInput(b)
		if err == nil {
			return
		}
		var r *refusal.Error
		if !errors.As(err, &r) || r.Stage != refusal.StageScreen || !strings.HasPrefix(r.Reason, reasonSchema+": ") {
			t.Fatalf("%q: %v", b, err)
		}
	})
}
