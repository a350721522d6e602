package node

import (
	"encoding/json"

	"github.com/treaty-dev/treaty/internal/wire"
)

// capsKeys are the fields of a /v1/caps answer and of each capability.
var capsKeys = &wire.KeyFields{
	Names: []string{"capabilities"},
	Sub: map[string]*wire.KeyFields{"capabilities": {
		Names: []string{"name", "description", "input_schema", "output_schema", "stream"},
	}},
}

// decodeCaps parses a peer's answer to /v1/caps; the caller refuses an
// error at stage wire. An answer other readers could read differently (a
// repeated key, or a key naming a field only under case folding) is
// refused, as wire.DecodeFailure refuses such a failure envelope.
func decodeCaps(body []byte) ([]CapabilityInfo, error) {
	if err := wire.UnambiguousKeys(body, "capability list", capsKeys); err != nil {
		return nil, err
	}
	var out struct {
		Capabilities []CapabilityInfo `json:"capabilities"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out.Capabilities, nil
}
