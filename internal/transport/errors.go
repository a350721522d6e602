package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/treaty-dev/treaty/internal/identity"
)

// ErrClosed is returned (wrapped) by operations on a closed Transport or Listener.
var ErrClosed = net.ErrClosed

// ErrUnreachable wraps a failed TCP connect in Dial (and so in RoundTrip):
// no handshake took place. The network error is wrapped too.
var ErrUnreachable = errors.New("transport: peer unreachable")

// Reason says why a handshake was refused. Each refusal maps to exactly one Reason.
type Reason int

const (
	// ReasonUnknownKey: the client's key is not admitted by the PeerSource (server side).
	ReasonUnknownKey Reason = iota + 1
	// ReasonWrongKey: the server's key is not the pinned key the dialer wanted (client side).
	ReasonWrongKey
	// ReasonCertExpired: the peer's certificate NotAfter is before Now().
	ReasonCertExpired
	// ReasonCertNotYetValid: the peer's certificate NotBefore is after Now().
	ReasonCertNotYetValid
	// ReasonBadCertificate: more than one certificate, unparsable, not ed25519,
	// not self-signed by its own key, unknown critical extension, or an
	// implausible validity period.
	ReasonBadCertificate
	// ReasonNoCertificate: the peer presented no certificate.
	ReasonNoCertificate
	// ReasonProtocol: not TLS 1.3, missing or unknown ALPN protocol, or any
	// other TLS-level failure that happened before the key checks.
	ReasonProtocol
	// ReasonTimeout: the handshake (including the acceptance marker) did not
	// finish within HandshakeTimeout.
	ReasonTimeout
	// ReasonRefusedByPeer: the other side refused us (a TLS alert other than
	// the certificate alerts of ReasonNotAdmitted, or it closed the connection
	// before accepting it: overloaded, shutting down, or not a treaty node).
	ReasonRefusedByPeer
	// ReasonOverload: the server already had too many handshakes in progress
	// (MaxPendingHandshakes, or for strangers that minus ReservedPending).
	ReasonOverload
	// ReasonSourceLimit: the server already had MaxPendingPerSource
	// handshakes in progress from the client's address (IPv4) or /64 (IPv6).
	ReasonSourceLimit
	// ReasonHelloTimeout: the client sent no complete ClientHello within
	// ClientHelloTimeout of connecting (server side).
	ReasonHelloTimeout
	// ReasonConnLimit: the server already held MaxConns connections.
	ReasonConnLimit
	// ReasonNotAdmitted: the server answered our certificate with a
	// certificate alert (client side): it does not admit our key, not yet (a
	// `peer add` it has not applied) or no longer, or it judged our
	// certificate outside its clock. The server is up and deciding, so this
	// says nothing about its health (see NotAdmitted).
	ReasonNotAdmitted
)

var reasonNames = [...]string{
	ReasonUnknownKey:      "unknown key",
	ReasonWrongKey:        "wrong key",
	ReasonCertExpired:     "certificate expired",
	ReasonCertNotYetValid: "certificate not yet valid",
	ReasonBadCertificate:  "bad certificate",
	ReasonNoCertificate:   "no certificate",
	ReasonProtocol:        "protocol",
	ReasonTimeout:         "timeout",
	ReasonRefusedByPeer:   "refused by peer",
	ReasonOverload:        "overload",
	ReasonSourceLimit:     "source limit",
	ReasonHelloTimeout:    "client hello timeout",
	ReasonConnLimit:       "connection limit",
	ReasonNotAdmitted:     "not admitted by peer",
}

// String returns a short lower-case name; unknown values print as "Reason(N)".
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// HandshakeError is the error of every refused handshake, on either side. It is
// logged and passed to Config.OnRefused before it is returned.
type HandshakeError struct {
	Side string // "server" or "client": the side that observed the refusal
	// Peer is the key the handshake was about: the pinned key on the client
	// side; on the server side the key the client's certificate claims (zero if
	// none was seen). A refused server-side Peer is unproven: the refusal may
	// precede the proof of possession.
	Peer identity.PublicKey
	// Presented is the key the server's certificate actually carried, for
	// ReasonWrongKey; zero otherwise.
	Presented identity.PublicKey
	Addr      string // the remote address
	Reason    Reason
	Err       error // the underlying TLS, network or verification error
}

func (e *HandshakeError) Error() string {
	peer := "unknown peer"
	if !e.Peer.IsZero() {
		peer = e.Peer.String()
	}
	msg := fmt.Sprintf("transport: %s: handshake with %s at %s refused: %s", e.Side, peer, e.Addr, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// verifyError is what our VerifyConnection callbacks return; crypto/tls hands
// it back from Handshake, so the refusal keeps its precise Reason.
type verifyError struct {
	reason    Reason
	peer      identity.PublicKey // claimed key, zero if none
	presented identity.PublicKey // for ReasonWrongKey
	msg       string
}

func (e *verifyError) Error() string { return e.msg }

// errBadMarker: the server's first application byte was not the acceptance marker.
var errBadMarker = errors.New("peer sent an unexpected first byte instead of the acceptance marker")

// classify turns a failed handshake into a HandshakeError.
func classify(side, addr string, err error) *HandshakeError {
	he := &HandshakeError{Side: side, Addr: addr, Err: err}
	var ve *verifyError
	switch {
	case errors.As(err, &ve):
		he.Reason, he.Peer, he.Presented = ve.reason, ve.peer, ve.presented
	case side == sideClient && isCertificateAlert(err):
		he.Reason = ReasonNotAdmitted
	case isRemoteAlert(err):
		he.Reason = ReasonRefusedByPeer
	case isTimeout(err):
		he.Reason = ReasonTimeout
	case side == sideClient && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)):
		// A treaty server refuses with an alert; a bare close means it refused
		// without one (overload, shutting down, no acceptor for the protocol).
		he.Reason = ReasonRefusedByPeer
	default:
		he.Reason = ReasonProtocol
	}
	return he
}

// isRemoteAlert reports whether err is a TLS alert received from the peer.
// crypto/tls reports those as *net.OpError with Op "remote error".
func isRemoteAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// certificateAlerts are the TLS alerts a server sends when it refuses the
// client's certificate; a treaty server sends bad_certificate (42) for every
// refusal of its VerifyConnection.
var certificateAlerts = []tls.AlertError{
	42,  // bad_certificate
	43,  // unsupported_certificate
	44,  // certificate_revoked
	45,  // certificate_expired
	46,  // certificate_unknown
	48,  // unknown_ca
	49,  // access_denied
	116, // certificate_required
}

// isCertificateAlert reports whether err is one of certificateAlerts
// received from the peer. crypto/tls's received alert type is unexported;
// its text is the one tls.AlertError of the same code prints.
func isCertificateAlert(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return false
	}
	got := oe.Err.Error()
	for _, a := range certificateAlerts {
		if got == a.Error() {
			return true
		}
	}
	return false
}

// NotAdmitted reports whether err is a client-side handshake refusal with
// ReasonNotAdmitted: the peer is up and refused this node's certificate.
// Callers keep it out of the peer's health (circuit breaker, trust): a peer
// that has not yet applied its `peer add` of this node is not failing.
func NotAdmitted(err error) bool {
	var he *HandshakeError
	return errors.As(err, &he) && he.Side == sideClient && he.Reason == ReasonNotAdmitted
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
