package wire

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// responseComponents are exactly the components a treaty response signature
// covers: the status, the body digest, and the request's own signature
// (RFC 9421 §2.4 with ;req, §2.1.2 with ;key), which binds the response to
// one request. Nothing else is covered, so a Receipt can re-verify offline.
var responseComponents = [...]component{
	{id: `"@status"`, name: "@status"},
	{id: `"content-digest"`, name: "content-digest", hkey: HeaderContentDigest},
	{id: `"signature";req;key="treaty"`, name: "signature", hkey: HeaderSignature, req: true, key: Label, hasK: true},
}

// NoRequestSignature is what a response is bound to when the request carried
// no usable treaty signature (none, two, one that does not parse, or one
// its sender did not make; see Verifier.UnverifiedRequest): a
// signature of 64 zero bytes, which no request carries. Such a refusal is
// still signed, so the node's answer is attributable, but it answers no
// request a caller signed.
const NoRequestSignature = Label + "=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==:"

// UnverifiedRequest returns what a refusal of req is bound to when req was
// refused before VerifyRequest returned it: a Request holding only req's raw
// Signature header, so that the caller can check that this callee refused
// exactly its request, provided that signature verifies with peer (the key
// the handshake proved) over req as received. Freshness, audience, digest
// and nonce are not checked: a request refused for those is still bound. Any
// other request gets NoRequestSignature: binding to a signature peer did not
// make would hand peer a receipt, valid offline, of this node refusing
// another caller's request (a delegation hop carries that caller's
// signature). No other field is set. It costs one signature check.
func (v *Verifier) UnverifiedRequest(req *http.Request, peer identity.PublicKey) Request {
	unbound := Request{Signature: NoRequestSignature}
	if req == nil || peer.IsZero() {
		return unbound
	}
	sh, _, err := joinLines(req.Header, HeaderSignature, maxSignatureBytes)
	if err != nil {
		return unbound
	}
	sig, err := parseSignatureValue(sh, Label)
	if err != nil || len(sig) != 64 {
		return unbound
	}
	si, ok, err := joinLines(req.Header, HeaderSignatureInput, maxSignatureInputBytes)
	if err != nil || !ok {
		return unbound
	}
	in, err := parseSignatureInputValue(si, Label)
	if err != nil || in.keyid != peer.String() {
		return unbound
	}
	base, err := signatureBase(requestMessage(req), in.comps, in.params)
	if err != nil || !v.keys.get(peer).Verify([]byte(base), sig) {
		return unbound
	}
	return Request{Signature: sh}
}

// SignResponse signs a response for req into h: it sets Content-Digest
// (sha-256 of body), Signature-Input and Signature. Call it before
// WriteHeader; send exactly status and body. Non-2xx responses, such as a
// Failure envelope, are signed the same way.
func SignResponse(h http.Header, status int, body []byte, req Request, key identity.PrivateKey, now time.Time) error {
	switch {
	case h == nil:
		return errors.New("wire: SignResponse: nil header")
	case key.IsZero():
		return errors.New("wire: SignResponse: zero key")
	case status < 100 || status > 999:
		return fmt.Errorf("wire: SignResponse: status %d, want 100..999", status)
	case now.IsZero():
		return errors.New("wire: SignResponse: zero time")
	}
	if _, err := parseSignatureValue(req.Signature, Label); err != nil {
		return fmt.Errorf("wire: SignResponse: request signature: %w", err)
	}
	h.Set(HeaderContentDigest, ContentDigestHeader(body))
	params := responseParams(now.Unix(), key.Public().String())
	m := responseMessage(status, h, req.Signature)
	base, err := signatureBase(m, responseComponents[:], params)
	if err != nil {
		return fmt.Errorf("wire: SignResponse: %w", err)
	}
	h.Set(HeaderSignatureInput, Label+"="+params)
	h.Set(HeaderSignature, signatureHeader(Label, key.Sign([]byte(base))))
	return nil
}

func responseParams(created int64, keyid string) string {
	b := make([]byte, 0, 200)
	b = append(b, '(')
	for i, c := range responseComponents {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, c.id...)
	}
	b = append(b, ");created="...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `;alg="`+Alg+`";keyid="`...)
	b = append(b, keyid...)
	b = append(b, `";tag="`+Tag+`"`...)
	return string(b)
}

func responseMessage(status int, h http.Header, reqSignature string) *message {
	return &message{
		response: true,
		status:   status,
		header:   h,
		req:      &message{header: http.Header{HeaderSignature: {reqSignature}}},
	}
}

// Receipt is the caller's evidence that the callee answered exactly one
// request: the request's signature base and signature (signed by Caller),
// and the response's status, Content-Digest and signature (signed by
// Callee, covering the request signature). It marshals to JSON and Verify
// re-checks it offline, with no access to either node.
type Receipt struct {
	Version          string `json:"version"` // Tag
	Caller           string `json:"caller"`  // did:key
	Callee           string `json:"callee"`  // did:key
	RequestBase      string `json:"request_base"`
	RequestSignature string `json:"request_signature"` // the request's Signature header
	Status           int    `json:"status"`
	ContentDigest    string `json:"content_digest"`  // the response's Content-Digest header
	SignatureInput   string `json:"signature_input"` // the response's Signature-Input header
	Signature        string `json:"signature"`       // the response's Signature header
}

// RequestDigest is sha256 of the request's signature base, the same value
// as Sent.Digest and Request.Digest.
func (r Receipt) RequestDigest() [32]byte { return sha256.Sum256([]byte(r.RequestBase)) }

// Verify re-checks the receipt offline: the request signature verifies with
// Caller over RequestBase, RequestBase is a request's signature base (one
// line per covered component, in order) naming Callee as audience and Caller
// as keyid, and the response signature verifies with Callee over the status,
// Content-Digest and the request signature. Errors are *Error.
func (r Receipt) Verify() error {
	if r.Version != Tag {
		return fail(ReasonMalformed, "receipt version %s, want %q", quote(r.Version), Tag)
	}
	caller, err := identity.ParseDID(r.Caller)
	if err != nil {
		return fail(ReasonMalformed, "receipt caller: %v", err)
	}
	callee, err := identity.ParseDID(r.Callee)
	if err != nil {
		return fail(ReasonMalformed, "receipt callee: %v", err)
	}
	if err := r.verifyRequest(caller, callee); err != nil {
		return err
	}
	if _, err := ParseContentDigest(r.ContentDigest); err != nil {
		return err
	}
	return r.verifyResponse(callee, nil)
}

// CheckBody verifies body against the receipt's Content-Digest.
func (r Receipt) CheckBody(body []byte) error {
	cd, err := ParseContentDigest(r.ContentDigest)
	if err != nil {
		return err
	}
	return cd.Check(body)
}

// verifyRequest checks the caller's half of the receipt.
func (r Receipt) verifyRequest(caller, callee identity.PublicKey) error {
	sig, err := parseSignatureValue(r.RequestSignature, Label)
	if err != nil {
		return err
	}
	const paramsPrefix = `"@signature-params": `
	i := strings.LastIndex(r.RequestBase, "\n"+paramsPrefix)
	if i < 0 {
		return fail(ReasonMalformed, "request base has no @signature-params line")
	}
	in, err := parseSignatureInputValue(Label+"="+r.RequestBase[i+1+len(paramsPrefix):], Label)
	if err != nil {
		return err
	}
	for _, c := range requestComponents {
		if !in.has(c.id) {
			return fail(ReasonMissingComponent, "request base does not cover %s", c.id)
		}
	}
	if in.keyid != caller.String() {
		return fail(ReasonKeyMismatch, "request keyid %s is not the receipt's caller", quote(in.keyid))
	}
	// The base must be exactly one line per covered component, in order:
	// the caller's key signs other messages too, and one that only contains
	// these lines is not a request.
	lines := strings.Split(r.RequestBase[:i], "\n")
	if len(lines) != len(in.comps) {
		return fail(ReasonMalformed, "request base has %d component lines, its signature parameters cover %d", len(lines), len(in.comps))
	}
	audience := ""
	for j, c := range in.comps {
		v, ok := strings.CutPrefix(lines[j], c.id+": ")
		if !ok {
			return fail(ReasonMalformed, "request base line %d is not %s", j+1, c.id)
		}
		if c.id == `"treaty-audience"` {
			audience = v
		}
	}
	if audience != callee.String() {
		return fail(ReasonBadAudience, "request base is not addressed to the receipt's callee")
	}
	if !caller.Verify([]byte(r.RequestBase), sig) {
		return fail(ReasonBadSignature, "request signature does not verify with caller %s", caller.Short())
	}
	return nil
}

// verifyResponse checks the callee's half: profile, keyid, then signature,
// with ek when it is not nil (callee's expansion), else with callee.
// r.Callee must be callee's did:key (one canonical text per key).
func (r Receipt) verifyResponse(callee identity.PublicKey, ek *identity.ExpandedKey) error {
	in, err := parseSignatureInputValue(r.SignatureInput, Label)
	if err != nil {
		return err
	}
	for _, c := range responseComponents {
		if !in.has(c.id) {
			return fail(ReasonMissingComponent, "response signature does not cover %s", c.id)
		}
	}
	switch {
	case len(in.comps) != len(responseComponents):
		return fail(ReasonMalformed, "response signature covers %d components, want exactly %d", len(in.comps), len(responseComponents))
	case !in.hasCreated:
		return fail(ReasonMalformed, "response signature has no created")
	case in.alg != Alg:
		return fail(ReasonMalformed, "alg = %s, want %q", quote(in.alg), Alg)
	case in.tag != Tag:
		return fail(ReasonMalformed, "tag = %s, want %q", quote(in.tag), Tag)
	}
	if in.keyid != r.Callee {
		return fail(ReasonKeyMismatch, "response keyid %s does not name the callee %s", quote(in.keyid), callee.Short())
	}
	sig, err := parseSignatureValue(r.Signature, Label)
	if err != nil {
		return err
	}
	if len(sig) != 64 {
		return fail(ReasonMalformed, "signature is %d bytes, want 64", len(sig))
	}
	h := http.Header{HeaderContentDigest: {r.ContentDigest}}
	base, err := signatureBase(responseMessage(r.Status, h, r.RequestSignature), in.comps, in.params)
	if err != nil {
		return err
	}
	var ok bool
	if ek != nil {
		ok = ek.Verify([]byte(base), sig)
	} else {
		ok = callee.Verify([]byte(base), sig)
	}
	if !ok {
		return fail(ReasonBadSignature, "response signature does not verify with callee %s over this request", callee.Short())
	}
	return nil
}

// VerifyResponse checks that resp (whose body the caller already read, within
// Limits, into body) was signed by callee, answers the request in sent, and
// carries exactly body. It returns the Receipt to keep. Every error is an
// *Error: ReasonKeyMismatch when keyid names another key, ReasonDigestMismatch
// for a changed body, ReasonBadSignature for a wrong signer or a response
// bound to another request.
func VerifyResponse(resp *http.Response, body []byte, sent Sent, callee identity.PublicKey) (Receipt, error) {
	return verifyResponse(resp, body, sent, callee, nil)
}

// VerifyResponse is the package's VerifyResponse with callee's expanded key
// from v's cache: the same checks and verdicts, less work per response.
func (v *Verifier) VerifyResponse(resp *http.Response, body []byte, sent Sent, callee identity.PublicKey) (Receipt, error) {
	var ek *identity.ExpandedKey
	if !callee.IsZero() {
		ek = v.keys.get(callee)
	}
	return verifyResponse(resp, body, sent, callee, ek)
}

func verifyResponse(resp *http.Response, body []byte, sent Sent, callee identity.PublicKey, ek *identity.ExpandedKey) (Receipt, error) {
	switch {
	case resp == nil:
		return Receipt{}, fail(ReasonMalformed, "no response")
	case callee.IsZero():
		return Receipt{}, fail(ReasonKeyMismatch, "no callee key")
	case sent.Signature == "" || sent.Caller.IsZero():
		return Receipt{}, fail(ReasonMalformed, "no sent request to bind to")
	}
	cd, ok, err := joinLines(resp.Header, HeaderContentDigest, maxDigestHeaderBytes)
	if err != nil {
		return Receipt{}, err
	}
	if !ok {
		return Receipt{}, fail(ReasonMissingComponent, "response Content-Digest is absent")
	}
	si, ok, err := joinLines(resp.Header, HeaderSignatureInput, maxSignatureInputBytes)
	if err != nil {
		return Receipt{}, err
	}
	if !ok {
		return Receipt{}, fail(ReasonMissingComponent, "response Signature-Input is absent")
	}
	sh, ok, err := joinLines(resp.Header, HeaderSignature, maxSignatureBytes)
	if err != nil {
		return Receipt{}, err
	}
	if !ok {
		return Receipt{}, fail(ReasonMissingComponent, "response Signature is absent")
	}
	callerDID := sent.callerDID
	if callerDID == "" {
		callerDID = sent.Caller.String()
	}
	r := Receipt{
		Version:          Tag,
		Caller:           callerDID,
		Callee:           callee.String(),
		RequestBase:      sent.Base,
		RequestSignature: sent.Signature,
		Status:           resp.StatusCode,
		ContentDigest:    cd,
		SignatureInput:   si,
		Signature:        sh,
	}
	parsed, err := ParseContentDigest(cd)
	if err != nil {
		return Receipt{}, err
	}
	if err := parsed.Check(body); err != nil {
		return Receipt{}, err
	}
	if err := r.verifyResponse(callee, ek); err != nil {
		return Receipt{}, err
	}
	return r, nil
}
