package localapi

// GovernRequest is the body of POST /v1/govern: ask the governing group
// (membership.governor) to admit or revoke a key by motion.
type GovernRequest struct {
	Action   string `json:"action"`             // "admit" or "revoke"
	Peer     string `json:"peer"`               // revoke: a did:key or a nickname; admit: the newcomer's did:key
	Name     string `json:"name,omitempty"`     // admit: the nickname members give it
	Addr     string `json:"addr,omitempty"`     // admit: where it listens, host:port
	Deadline string `json:"deadline,omitempty"` // Go duration; "": 24h
	Wait     bool   `json:"wait,omitempty"`     // answer once the motion is decided, not once it is open
}

// GovernResponse names the motion opened (with this node's yes vote).
type GovernResponse struct {
	Group   string `json:"group"`
	Motion  string `json:"motion"`
	Index   uint64 `json:"index"`   // the entry that opened it
	Outcome string `json:"outcome"` // open, passed (or, with wait, the error says failed)
	Key     string `json:"key"`     // the did:key it admits or revokes
}
