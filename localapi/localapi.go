// Package localapi is the contract of a node's local API: the HTTP/1.1 JSON
// requests and answers served on the unix socket treaty.sock in the node's
// home, the refusal stages and the exit codes they map to. It imports only the
// standard library, so that agents can depend on it without linking the node.
//
// Every error answer is an ErrorResponse, {"error":{"stage":...,"reason":...}};
// the full reference, with curl examples, is docs/api.md, and a running node
// serves it as OpenAPI 3.1 at GET /v1/openapi.json.
package localapi

import "encoding/json"

// SocketName is the socket file inside a home directory (mode 0600).
const SocketName = "treaty.sock"

// MaxRequestBytes bounds a local API request body; a larger one is refused
// with stage "usage".
const MaxRequestBytes = 16 << 20

// MaxConnections bounds the connections open at once on the socket, for all
// processes together, and MaxConnectionsPerProcess those of one process
// (on Linux, which names the process that connected). A connection over
// either is answered 403 with stage "budget" and closed.
const (
	MaxConnections           = 1024
	MaxConnectionsPerProcess = 256
)

// CallRequest is the body of POST /v1/call and POST /v1/stream.
type CallRequest struct {
	Peer       string          `json:"peer"`       // did:key or nickname from the peer book
	Capability string          `json:"capability"` // the capability's name
	Input      json.RawMessage `json:"input"`      // any JSON value; omitted means {}
	// Within is the TREATY_CALL token of the inbound call on whose behalf
	// this call is made (a backend calling onward); empty for a direct call.
	Within string `json:"within,omitempty"`
}

// CallResponse is the answer of POST /v1/call.
type CallResponse struct {
	Output    json.RawMessage `json:"output"`     // the capability's JSON result
	Receipt   json.RawMessage `json:"receipt"`    // the callee's signed receipt of this exact request
	ElapsedMS float64         `json:"elapsed_ms"` // from resolving the peer to the verified answer
}

// StreamLine is one line of the NDJSON answer of POST /v1/stream: data lines,
// then exactly one line with End set, which carries Error when the stream
// failed after it started.
type StreamLine struct {
	Data  json.RawMessage `json:"data,omitempty"`
	End   bool            `json:"end,omitempty"`
	Error *ErrorBody      `json:"error,omitempty"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	ID   string `json:"id"`   // the node's peer ID (did:key)
	Name string `json:"name"` // the node's nickname
	Addr string `json:"addr"` // the bound federation address, host:port
	// ConfigError is why the node is running on its previous configuration:
	// treaty.yaml or policy.cedar changed on disk and the new version was
	// rejected. Empty when the files on disk are in effect.
	ConfigError string `json:"config_error,omitempty"`
}

// PeerInfo is one entry of GET /v1/peers.
type PeerInfo struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Breaker string `json:"breaker,omitempty"` // closed, open or half-open; empty when the node is not running
	Source  string `json:"source,omitempty"`  // operator, invite, gossip or decision (localapi/membership.go)
	// Unwitnessed counts the peer's checkpoint notes in a row that this
	// node's audit witness could not judge (no consistency proof had).
	Unwitnessed int `json:"unwitnessed,omitempty"`
}

// CapabilityInfo describes one capability a peer exposes to this node.
type CapabilityInfo struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema,omitempty"`  // a JSON Schema, when the peer gave one
	OutputSchema json.RawMessage `json:"output_schema,omitempty"` // a JSON Schema, when the peer gave one
	Stream       bool            `json:"stream,omitempty"`        // call it with POST /v1/stream
}

// CapsResponse is the answer of GET /v1/caps?peer=PEER.
type CapsResponse struct {
	Capabilities []CapabilityInfo `json:"capabilities"`
}

// TrustSetRequest is the body of POST /v1/trust/set. A nil (omitted) level
// leaves that bound unchanged; an empty string removes it; otherwise it is a
// level name. Lift ends a quarantine.
type TrustSetRequest struct {
	Peer    string  `json:"peer"` // did:key or nickname
	Floor   *string `json:"floor,omitempty"`
	Ceiling *string `json:"ceiling,omitempty"`
	Lift    bool    `json:"lift"` // end a quarantine; false leaves it
}

// OKResponse is the answer of requests that only succeed or fail, such as
// POST /v1/trust/set.
type OKResponse struct {
	OK bool `json:"ok"`
}

// ErrorBody carries a refusal across the socket.
type ErrorBody struct {
	Stage  Stage  `json:"stage"`
	Reason string `json:"reason"`
	Remote bool   `json:"remote,omitempty"` // the peer refused, not this node
}

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	Error *ErrorBody `json:"error"`
}

// Err returns the refusal b describes.
func (b *ErrorBody) Err() *Error {
	return &Error{Stage: b.Stage, Reason: b.Reason, Remote: b.Remote}
}
