package localapi

import "time"

// GroupCreateRequest is the body of POST /v1/groups/create: a group of which
// this node is a member. Members are did:keys, peer nicknames or this node's
// name, every member listed, this node included.
//
// With Join the node joins a group (raft or bft) that added it by motion: Members is
// then the group as it was created (epoch 0), without this node.
type GroupCreateRequest struct {
	Name    string   `json:"name"`
	Mode    string   `json:"mode"` // raft or bft
	Members []string `json:"members"`
	Join    bool     `json:"join,omitempty"`
	// Nonce (32 hex digits) is the group's creation nonce, the same on
	// every member; omitted, the group has none (and the ID groups had
	// before nonces).
	Nonce string `json:"nonce,omitempty"`
}

// GroupInfo is one group in GET /v1/groups.
type GroupInfo struct {
	Name      string        `json:"name"`
	ID        string        `json:"id,omitempty"`    // hex digest of name, mode, epoch, nonce and members
	Nonce     string        `json:"nonce,omitempty"` // the creation nonce, if the group has one
	Mode      string        `json:"mode,omitempty"`
	Epoch     uint64        `json:"epoch"`
	Source    string        `json:"source,omitempty"` // config (treaty.yaml) or cli (group create)
	N         int           `json:"n"`
	F         int           `json:"f"`      // lying members tolerated (bft); 0 for raft
	Quorum    int           `json:"quorum"` // members that must agree
	Leader    string        `json:"leader,omitempty"`
	Term      uint64        `json:"term"` // raft term or bft view
	LastIndex uint64        `json:"last_index"`
	Healthy   bool          `json:"healthy"`
	Members   []GroupMember `json:"members"`
	Error     string        `json:"error,omitempty"` // why the group is not running
}

// GroupMember is one member as this node sees it.
type GroupMember struct {
	ID          string     `json:"id"`
	Name        string     `json:"name,omitempty"` // nickname in the peer book, or this node's name
	Self        bool       `json:"self,omitempty"`
	Reachable   bool       `json:"reachable"`
	LastContact *time.Time `json:"last_contact,omitempty"`
	Refused     string     `json:"refused,omitempty"` // why its last connection was refused (e.g. another definition)
}

// GroupMemberRequest is the body of POST /v1/groups/member: it opens the
// group's motion to add or remove Peer, which members then vote on.
type GroupMemberRequest struct {
	Group  string `json:"group"`
	Peer   string `json:"peer"` // did:key or nickname
	Remove bool   `json:"remove,omitempty"`
	Text   string `json:"text,omitempty"`
}

// KVPutRequest is the body of POST /v1/kv/put. With IfVersion set it is a
// compare-and-set (0: the key must be absent).
type KVPutRequest struct {
	Group     string  `json:"group"`
	Key       string  `json:"key"`
	Value     string  `json:"value"`
	IfVersion *uint64 `json:"if_version,omitempty"`
}

// Decision is what a committed request did: its index in the group's log and
// the machine's result.
type Decision struct {
	Index   uint64          `json:"index"`
	Version uint64          `json:"version,omitempty"` // kv: the key's version after
	Motion  string          `json:"motion,omitempty"`
	Outcome string          `json:"outcome,omitempty"` // of Motion: open, passed or failed
	Closed  []MotionClosure `json:"closed,omitempty"`  // motions this entry decided
	// Removed: this node's own vote passed a membership change that removed
	// it; the vote succeeded and this node is no longer a member.
	Removed bool `json:"removed,omitempty"`
}

// MotionClosure is a motion decided by an entry.
type MotionClosure struct {
	Motion  string `json:"motion"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

// KVItem is GET /v1/kv/get's answer.
type KVItem struct {
	Group   string `json:"group"`
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
	Index   uint64 `json:"index"` // entry that last wrote it
}

// KVList is GET /v1/kv/ls's answer.
type KVList struct {
	Keys []string `json:"keys"`
	// Truncated: more keys have the prefix than the answer holds (it has
	// the first Limit in key order); list by a longer prefix.
	Truncated bool `json:"truncated"`
	Limit     int  `json:"limit"` // the most keys one answer holds
}

// MotionOpenRequest is the body of POST /v1/motions/open.
type MotionOpenRequest struct {
	Group    string `json:"group"`
	Name     string `json:"name"`
	Quorum   uint32 `json:"quorum"`
	Deadline string `json:"deadline,omitempty"` // a Go duration from now, e.g. "1h"; empty: none
	Text     string `json:"text,omitempty"`
}

// MotionVoteRequest is the body of POST /v1/motions/vote.
type MotionVoteRequest struct {
	Group  string `json:"group"`
	Motion string `json:"motion"`
	Vote   string `json:"vote"` // yes or no
}

// MotionInfo is a motion in GET /v1/motions/show and /v1/motions/ls.
type MotionInfo struct {
	Name     string     `json:"name"`
	Kind     string     `json:"kind"`              // plain, add-member or remove-member
	Subject  string     `json:"subject,omitempty"` // the member to add or remove
	Proposer string     `json:"proposer"`
	Quorum   uint32     `json:"quorum"`
	Deadline *time.Time `json:"deadline,omitempty"` // agreed time
	Text     string     `json:"text,omitempty"`
	Yes      []string   `json:"yes"`
	No       []string   `json:"no"`
	Outcome  string     `json:"outcome"` // open, passed or failed
	Reason   string     `json:"reason,omitempty"`
	Opened   uint64     `json:"opened"`            // index of the entry that opened it
	Decided  uint64     `json:"decided,omitempty"` // index of the entry that decided it
}

// MotionList is GET /v1/motions/ls's answer.
type MotionList struct {
	Motions []MotionInfo `json:"motions"`
}
