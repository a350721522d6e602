package node

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/wire"
)

// refusedFields are the capability, peer reference and reason an outbound
// refusal's audit entry keeps. A local client may pass any text as either
// name (a secret pasted in the wrong field, terminal escapes): only a valid
// capability name and a plain reference (a nickname or a did:key) are kept,
// anything else is dropped from the reason too. The caller's error still
// shows it; the audit log keeps what it is given forever.
func refusedFields(capName, peerRef string, err error) (capField, refField, reason string) {
	capField, refField, reason = capName, peerRef, err.Error()
	if !wire.ValidCapabilityName(capName) {
		capField = ""
		if capName != "" {
			reason = strings.ReplaceAll(reason, strconv.Quote(capName), "(a capability name that is not one, not kept)")
		}
	}
	if _, derr := identity.ParseDID(peerRef); derr != nil && !config.ValidName(peerRef) {
		refField = fmt.Sprintf("(%d bytes that are not a peer reference, not kept)", len(peerRef))
		if peerRef != "" {
			reason = strings.ReplaceAll(reason, strconv.Quote(peerRef), "(a peer reference that is not one, not kept)")
		}
	}
	return capField, refField, reason
}
