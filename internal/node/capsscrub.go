package node

import (
	"encoding/json"
	"errors"

	"github.com/treaty-dev/treaty/internal/sanitize"
)

// withheldCapText replaces the description of a capability the sanitizer
// blocked in a capability list.
const withheldCapText = "[withheld by treaty: the description holds content the sanitizer blocks]"

// scrubCaps scrubs the capability list infos for the peer of in, returning
// it and its size before scrubbing. When the list as a whole is blocked (a
// secret in one capability's description or schema, which a local MCP
// server or A2A agent writes), each capability is checked alone and a
// blocked one is listed by name with its text and schemas withheld: one
// backend's text must not hide every capability. What leaves is still the
// one list, scrubbed; if it is still blocked it is refused as before.
func (in *inbound) scrubCaps(infos []CapabilityInfo) (sanitize.Clean, int, error) {
	b, err := json.Marshal(map[string]any{"capabilities": infos})
	if err != nil {
		return sanitize.Clean{}, 0, err
	}
	clean, err := in.n.scrub(in.r.Context(), in.st, in.peer, capsCapability, b)
	var blocked *sanitize.BlockedError
	if err == nil || !errors.As(err, &blocked) {
		return clean, len(b), err
	}
	pol := in.st.cfg.SanitizePolicy(in.peer.String(), capsCapability)
	for i, info := range infos {
		one, merr := json.Marshal(info)
		if merr != nil {
			continue
		}
		res, derr := in.n.sanitizer.DryRunContext(in.r.Context(), in.peer.String(), pol, one)
		if derr != nil || res.Action == sanitize.ActionBlock {
			infos[i] = CapabilityInfo{Name: info.Name, Description: withheldCapText, Stream: info.Stream}
			in.n.log.Warn("capability text withheld from a peer's capability list: the sanitizer blocks it",
				"event", "sanitize.caps_withheld", "peer", in.peer, "capability", info.Name)
		}
	}
	if b, err = json.Marshal(map[string]any{"capabilities": infos}); err != nil {
		return sanitize.Clean{}, 0, err
	}
	clean, err = in.n.scrub(in.r.Context(), in.st, in.peer, capsCapability, b)
	return clean, len(b), err
}
