package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Header names and profile constants of treaty/1.
const (
	HeaderContentDigest  = "Content-Digest"
	HeaderAudience       = "Treaty-Audience"
	HeaderCapability     = "Treaty-Capability"
	HeaderSignatureInput = "Signature-Input"
	HeaderSignature      = "Signature"

	// Label is the only Signature/Signature-Input dictionary label treaty uses.
	Label = "treaty"
	// Tag is the RFC 9421 "tag" parameter naming this profile and version.
	Tag = "treaty/1"
	// Alg is the RFC 9421 algorithm name; the only one accepted.
	Alg = "ed25519"
	// StreamContentType is the media type of a stream response (NDJSON events).
	StreamContentType = "application/x-ndjson"

	// DefaultTTL is the request lifetime when SignParams.TTL is zero.
	DefaultTTL = 30 * time.Second

	nonceBytes = 16
)

// requestComponents are the components every treaty request signature
// covers, in this order. @authority+@path+@query is used rather than
// @target-uri because the scheme is not reliably known to a server behind a
// TLS-terminating listener, while these three are exactly what the client
// transmits (:authority and :path) and the server receives.
var requestComponents = [...]component{
	{id: `"@method"`, name: "@method"},
	{id: `"@authority"`, name: "@authority"},
	{id: `"@path"`, name: "@path"},
	{id: `"@query"`, name: "@query"},
	{id: `"content-digest"`, name: "content-digest", hkey: HeaderContentDigest},
	{id: `"treaty-audience"`, name: "treaty-audience", hkey: HeaderAudience},
	{id: `"treaty-capability"`, name: "treaty-capability", hkey: HeaderCapability},
}

// ValidCapabilityName reports whether s is a capability name: 1 to 64 bytes
// of [a-z0-9._-], starting with a letter or digit. The ASCII-only alphabet
// rules out homoglyphs, invisible characters, case folding and Unicode
// normalization tricks: two names that look alike are equal byte for byte.
// The first byte keeps names from reading as flags ("-x") or as path
// segments that URL cleaning rewrites ("." and "..").
func ValidCapabilityName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	if c := s[0]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validNonce accepts 16..64 characters of the base64url alphabet; treaty
// signers send 22 (16 random bytes).
func validNonce(s string) bool {
	if len(s) < 16 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// SignParams says who signs a request, for whom, and when.
type SignParams struct {
	Key        identity.PrivateKey // the caller's identity key; required
	Audience   identity.PublicKey  // the callee; required
	Capability string              // must satisfy ValidCapabilityName
	Now        time.Time           // required; "created" is Now truncated to the second
	TTL        time.Duration       // zero: DefaultTTL (30 s); rounded up to whole seconds
	Rand       io.Reader           // nonce source; nil: crypto/rand
	// Chain is the delegation chain of a call made while serving another:
	// ChainFrom(served). nil: a direct call, sent without Treaty-Chain.
	Chain Chain
}

// Sent is what the caller keeps of a signed request to verify the response
// (VerifyResponse, NewStreamReader) and to audit the call.
type Sent struct {
	Caller         identity.PublicKey
	Audience       identity.PublicKey
	Capability     string
	Created        time.Time
	Expires        time.Time
	Nonce          string
	ContentDigest  string   // the Content-Digest header sent
	Base           string   // the RFC 9421 signature base that was signed
	Digest         [32]byte // sha256(Base): the request's identity; equals Request.Digest at the callee
	SignatureInput string   // the Signature-Input header sent
	Signature      string   // the Signature header sent; the response binds to it

	callerDID string // Caller.String(), kept to spare a base58 encoding
}

// SignRequest signs req for p.Audience: it sets Content-Digest (sha-256 of
// body), Treaty-Audience, Treaty-Capability, Signature-Input and Signature,
// replacing any previous values, and Treaty-Chain (covered) when p.Chain is
// not empty (otherwise it removes any Treaty-Chain). The caller must send
// body unchanged and must not change the method, host or request-target
// afterwards. A chain that would loop back to p.Audience or exceeds
// MaxChainHops is refused with an *Error (ReasonChainLoop, ReasonChainTooDeep)
// wrapped in the returned error.
func SignRequest(req *http.Request, body []byte, p SignParams) (Sent, error) {
	switch {
	case req == nil || req.URL == nil:
		return Sent{}, errors.New("wire: SignRequest: request has no URL")
	case p.Key.IsZero():
		return Sent{}, errors.New("wire: SignParams.Key is zero")
	case p.Audience.IsZero():
		return Sent{}, errors.New("wire: SignParams.Audience is zero")
	case !ValidCapabilityName(p.Capability):
		return Sent{}, fmt.Errorf("wire: SignParams.Capability = %s, want 1..64 bytes of [a-z0-9._-]", quote(p.Capability))
	case p.Now.IsZero():
		return Sent{}, errors.New("wire: SignParams.Now is zero")
	case p.TTL < 0 || p.TTL > time.Hour:
		return Sent{}, fmt.Errorf("wire: SignParams.TTL = %v, want 0..1h", p.TTL)
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	ttlSec := int64((ttl + time.Second - 1) / time.Second)
	r := p.Rand
	if r == nil {
		r = rand.Reader
	}
	var nb [nonceBytes]byte
	if _, err := io.ReadFull(r, nb[:]); err != nil {
		return Sent{}, fmt.Errorf("wire: read nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(nb[:])
	created := p.Now.Unix()
	expires := created + ttlSec
	caller := p.Key.Public()
	comps := requestComponents[:]
	if len(p.Chain) > 0 {
		v, err := encodeChain(p.Chain, caller, p.Audience)
		if err != nil {
			return Sent{}, fmt.Errorf("wire: SignParams.Chain: %w", err)
		}
		req.Header.Set(HeaderChain, v)
		comps = chainedRequestComponents[:]
	} else {
		req.Header.Del(HeaderChain)
	}

	digest := ContentDigestHeader(body)
	req.Header.Set(HeaderContentDigest, digest)
	req.Header.Set(HeaderAudience, p.Audience.String())
	req.Header.Set(HeaderCapability, p.Capability)

	callerDID := caller.String()
	params := requestParams(comps, created, expires, nonce, callerDID)
	base, err := signatureBase(requestMessage(req), comps, params)
	if err != nil {
		return Sent{}, fmt.Errorf("wire: SignRequest: %w", err)
	}
	sig := p.Key.Sign([]byte(base))
	sigInput := Label + "=" + params
	sigHeader := signatureHeader(Label, sig)
	req.Header.Set(HeaderSignatureInput, sigInput)
	req.Header.Set(HeaderSignature, sigHeader)
	return Sent{
		Caller:         caller,
		Audience:       p.Audience,
		Capability:     p.Capability,
		Created:        time.Unix(created, 0),
		Expires:        time.Unix(expires, 0),
		Nonce:          nonce,
		ContentDigest:  digest,
		Base:           base,
		Digest:         sha256.Sum256([]byte(base)),
		SignatureInput: sigInput,
		Signature:      sigHeader,
		callerDID:      callerDID,
	}, nil
}

// requestParams serializes the inner list with its parameters. It is the
// exact httpsfv serialization of the same list (checked by a test), written
// by hand because every value is already known to be valid.
func requestParams(comps []component, created, expires int64, nonce, keyid string) string {
	b := make([]byte, 0, 256)
	b = append(b, '(')
	for i, c := range comps {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, c.id...)
	}
	b = append(b, ");created="...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, ";expires="...)
	b = strconv.AppendInt(b, expires, 10)
	b = append(b, `;nonce="`...)
	b = append(b, nonce...)
	b = append(b, `";alg="`+Alg+`";keyid="`...)
	b = append(b, keyid...)
	b = append(b, `";tag="`+Tag+`"`...)
	return string(b)
}
