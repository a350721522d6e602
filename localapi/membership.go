package localapi

// MemberInfo is one entry of GET /v1/members: a key admission knows of, with
// what gossip says about it when gossip runs (membership.enabled).
type MemberInfo struct {
	Name   string   `json:"name,omitempty"`   // nickname in the peer book; "" for a refused key
	ID     string   `json:"id"`               // did:key
	Addr   string   `json:"addr,omitempty"`   // peer book address
	Source string   `json:"source,omitempty"` // operator, invite, gossip or decision
	Status string   `json:"status"`           // "member", "revoked" or "superseded by ..."
	State  string   `json:"state,omitempty"`  // gossip: alive, suspect, dead or left; "" without gossip
	Org    string   `json:"org,omitempty"`    // gossip: the organisation its signed record names
	Addrs  []string `json:"addrs,omitempty"`  // gossip: the addresses its signed record names
	Via    string   `json:"via,omitempty"`    // gossip: the relay it is reached through, if any
}

// InviteRequest is the body of POST /v1/invite.
type InviteRequest struct {
	TTL  string `json:"ttl,omitempty"`  // Go duration; "": 1h
	Uses int    `json:"uses,omitempty"` // 0: 1
	Addr string `json:"addr,omitempty"` // where newcomers reach this node; "": its bound address
}

// InviteResponse carries the join token. It is a bearer secret: show it once.
type InviteResponse struct {
	Token   string `json:"token"`
	Expires string `json:"expires"` // RFC 3339
	Uses    int    `json:"uses"`
}

// JoinRequest is the body of POST /v1/join.
type JoinRequest struct {
	Token string `json:"token"`
	Addr  string `json:"addr,omitempty"` // where members reach this node; "": its bound address
}

// JoinResponse says whom this node joined through.
type JoinResponse struct {
	Inviter string `json:"inviter"` // did:key
	Name    string `json:"name"`    // its nickname in this node's book
	Members int    `json:"members"` // other members learned
}

// RotateResponse is the answer of POST /v1/rotate. The node restarts on the
// new key right after answering (`treaty run` does it by itself).
type RotateResponse struct {
	Old     string `json:"old"`
	New     string `json:"new"`
	Acked   int    `json:"acked"`
	Members int    `json:"members"`
}

// PublishRequest is the body of POST /v1/publish: a signed statement
// (a prepared revocation, say) for this node to apply and spread.
type PublishRequest struct {
	Statement string `json:"statement"`
}

// PublishResponse says how many members acknowledged the statement.
type PublishResponse struct {
	Kind  string `json:"kind"`
	Acked int    `json:"acked"`
}
