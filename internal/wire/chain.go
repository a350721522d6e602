package wire

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Delegation chains.
//
// A call made while serving another call carries, in the covered header
// Treaty-Chain, the proof of every call it was made on behalf of: when B
// serves R1 from A and, while doing so, calls C with R2, then R2 carries
// the hop for R1 (A's signed request addressed to B), followed by the hops
// R1 itself carried. C can check, link by link, that A asked B, that B is
// the one asking C, and how deep the delegation is, and refuse loops.
//
// # Header format
//
// Treaty-Chain is an RFC 8941 list with one inner list per hop, nearest hop
// first (the request the current caller is serving), originator last:
//
//	Treaty-Chain: ("SIGINPUT" :SIG: :V1: :V2: ... :Vn:), ("SIGINPUT" :SIG: ...), ...
//
//	SIGINPUT  sf-string: the upstream request's Signature-Input header, e.g.
//	          treaty=("@method" ... "treaty-capability" "treaty-chain");created=...
//	SIG       byte sequence: its 64-byte ed25519 signature
//	V1..Vn    byte sequences: the value of each covered component, in
//	          Signature-Input order, except "treaty-chain", whose value is
//	          not carried: it is, byte for byte, the serialization of the hops
//	          that follow this one in the same header.
//
// No parameters are allowed anywhere, and the header must be exactly the
// canonical serialization (a parser that re-encodes what it read must get
// the same bytes back), so one chain has one encoding. From these parts a
// verifier rebuilds each hop's RFC 9421 signature base (lines
// `"component": value`, then `"@signature-params": ...` from SIGINPUT) and
// checks the hop's signature with the key its keyid names. Omitting the
// nested chain keeps the header linear in the number of hops (about 700
// bytes each) where carrying each base whole would grow geometrically.
//
// A request's own signature covers "treaty-chain" whenever the header is
// present, and every hop that has hops after it covers its own chain, so
// changing any byte of any hop breaks a signature.
//
// # What a chain proves, and what it does not
//
// A hop proves that its Caller signed a request to its Audience for its
// Capability at Created. It is not a credential: a chain never grants
// anything, it only adds refusals (depth and loops). Hops are therefore not
// checked for freshness or replay: an upstream call may legitimately run
// longer than its own TTL while it waits on the calls it made, and each
// hop's freshness and nonce were already enforced by its own callee when it
// arrived. A replayed or stale hop can only make a call more likely to be
// refused. Equally, a caller that omits the chain makes an ordinary direct
// call in its own name, limited by its own budget: loop detection relies on
// honest intermediaries and bounds honest fan-out, not a hostile one.

// HeaderChain carries the delegation chain of a request.
const HeaderChain = "Treaty-Chain"

// Chain bounds.
const (
	// MaxChainHops is the hard cap on the hops a Treaty-Chain may carry,
	// whatever VerifierConfig.MaxDepth says.
	MaxChainHops = 8
	// MaxChainBytes bounds the Treaty-Chain header value. Note that
	// Limits.MaxHeaderBytes (default 16 KiB) bounds the whole header section.
	MaxChainBytes = 16 << 10
	// DefaultMaxDepth is VerifierConfig.MaxDepth when zero.
	DefaultMaxDepth = 4
	// maxDepthLimit is the largest VerifierConfig.MaxDepth.
	maxDepthLimit = 8
)

// chainComponent is the identifier a request covers when it carries a chain.
var chainComponent = component{id: `"treaty-chain"`, name: "treaty-chain", hkey: HeaderChain}

// chainedRequestComponents are requestComponents plus "treaty-chain", the
// order SignRequest covers them in when SignParams.Chain is not empty.
var chainedRequestComponents = [...]component{
	requestComponents[0], requestComponents[1], requestComponents[2], requestComponents[3],
	requestComponents[4], requestComponents[5], requestComponents[6], chainComponent,
}

// Hop is one verified link of a delegation chain: an upstream request that
// Caller signed for Audience. Every field is derived from signed bytes.
type Hop struct {
	Caller     identity.PublicKey // who delegated: the upstream request's keyid
	Audience   identity.PublicKey // to whom: its Treaty-Audience
	Capability string
	Created    time.Time
	Expires    time.Time // may be in the past: hops are not checked for freshness
	Nonce      string
	// Digest is sha256(Base): the upstream callee's Request.Digest, which
	// joins this hop to that callee's audit record of the call.
	Digest [32]byte
	// SignatureInput and Signature are the upstream request's header values;
	// Base is its full RFC 9421 signature base, "treaty-chain" line included.
	SignatureInput string
	Signature      string
	Base           string
}

// Chain is a delegation chain, nearest hop first: Chain[0] is the request
// the current caller is serving, the last hop is the originator's request.
type Chain []Hop

// ChainFrom returns the chain for an onward call made while serving
// served (a Request that VerifyRequest returned): the hop for served,
// followed by served.Chain. Pass it as SignParams.Chain; SignRequest checks
// it and refuses a chain that was not built this way.
func ChainFrom(served Request) Chain {
	c := make(Chain, 0, 1+len(served.Chain))
	c = append(c, Hop{
		Caller:         served.Peer,
		Audience:       served.Audience,
		Capability:     served.Capability,
		Created:        served.Created,
		Expires:        served.Expires,
		Nonce:          served.Nonce,
		Digest:         served.Digest,
		SignatureInput: served.SignatureInput,
		Signature:      served.Signature,
		Base:           served.Base,
	})
	return append(c, served.Chain...)
}

// DelegationPath returns the peers r came through as did:keys: r.Peer
// first, then each hop's Caller, the originator last. Its length is the
// call's depth; it is the chain budget.CheckChain takes.
func (r Request) DelegationPath() []string {
	p := make([]string, 0, 1+len(r.Chain))
	p = append(p, r.Peer.String())
	for _, h := range r.Chain {
		p = append(p, h.Caller.String())
	}
	return p
}

// hopWire is one hop as Treaty-Chain carries it.
type hopWire struct {
	sigInput string   // the upstream Signature-Input header value
	sig      []byte   // 64 bytes
	values   []string // covered component values in order, "treaty-chain" omitted
}

// appendHop appends the canonical inner-list serialization of h, exactly
// what httpsfv.Marshal produces (FuzzParseChain checks this).
func appendHop(b []byte, h hopWire) []byte {
	b = append(b, '(', '"')
	for i := 0; i < len(h.sigInput); i++ {
		if c := h.sigInput[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, h.sigInput[i])
	}
	b = append(b, '"', ' ', ':')
	b = base64.StdEncoding.AppendEncode(b, h.sig)
	b = append(b, ':')
	for _, v := range h.values {
		b = append(b, ' ', ':')
		b = base64.StdEncoding.AppendEncode(b, []byte(v))
		b = append(b, ':')
	}
	return append(b, ')')
}

// encodeHops serializes hops as a Treaty-Chain value; suffixes[i] is the
// serialization of hops[i:] (suffixes[len(hops)] is ""), the value that
// hop i-1 covers as its own "treaty-chain".
func encodeHops(hops []hopWire) (value string, suffixes []string) {
	encs := make([][]byte, len(hops))
	for i, h := range hops {
		encs[i] = appendHop(nil, h)
	}
	suffixes = make([]string, len(hops)+1)
	var b []byte
	for i := len(hops) - 1; i >= 0; i-- {
		b = b[:0]
		b = append(b, encs[i]...)
		if i < len(hops)-1 {
			b = append(b, ", "...)
			b = append(b, suffixes[i+1]...)
		}
		suffixes[i] = string(b)
	}
	return suffixes[0], suffixes
}

// parseChain parses a Treaty-Chain value into hops. It checks the structure
// only (ReasonChainMalformed, or ReasonChainTooDeep past MaxChainHops);
// openHop and verifyChain check the contents.
func parseChain(v string) ([]hopWire, []string, error) {
	if v == "" {
		return nil, nil, fail(ReasonChainMalformed, "Treaty-Chain is empty")
	}
	if len(v) > MaxChainBytes {
		return nil, nil, fail(ReasonChainMalformed, "Treaty-Chain exceeds %d bytes", MaxChainBytes)
	}
	l, err := httpsfv.UnmarshalList([]string{v})
	if err != nil {
		return nil, nil, fail(ReasonChainMalformed, "Treaty-Chain: %v", err)
	}
	if len(l) > MaxChainHops {
		return nil, nil, fail(ReasonChainTooDeep, "Treaty-Chain has %d hops, max %d", len(l), MaxChainHops)
	}
	hops := make([]hopWire, len(l))
	for i, m := range l {
		il, ok := m.(httpsfv.InnerList)
		if !ok {
			return nil, nil, fail(ReasonChainMalformed, "hop %d is not an inner list", i)
		}
		if len(il.Items) < 2 {
			return nil, nil, fail(ReasonChainMalformed, "hop %d has %d items, want at least 2", i, len(il.Items))
		}
		si, ok := il.Items[0].Value.(string)
		if !ok {
			return nil, nil, fail(ReasonChainMalformed, "hop %d: first item is not the Signature-Input string", i)
		}
		sig, ok := il.Items[1].Value.([]byte)
		if !ok || len(sig) != 64 {
			return nil, nil, fail(ReasonChainMalformed, "hop %d: second item is not a 64-byte signature", i)
		}
		h := hopWire{sigInput: si, sig: sig, values: make([]string, 0, len(il.Items)-2)}
		for _, it := range il.Items[2:] {
			b, ok := it.Value.([]byte)
			if !ok {
				return nil, nil, fail(ReasonChainMalformed, "hop %d: a component value is not a byte sequence", i)
			}
			h.values = append(h.values, string(b))
		}
		hops[i] = h
	}
	// Only the canonical serialization is accepted (this also refuses any
	// parameter, which appendHop never writes), so that the suffix each hop
	// covers is exactly a suffix of what was received.
	canon, suffixes := encodeHops(hops)
	if canon != v {
		return nil, nil, fail(ReasonChainMalformed, "Treaty-Chain is not in canonical form")
	}
	return hops, suffixes, nil
}

// openHop checks one hop's contents and rebuilds its signature base, with
// rest (the serialization of the hops after it, "" for the last) as the
// value of its "treaty-chain" component. It does not verify the signature.
func openHop(i int, w hopWire, rest string) (Hop, error) {
	in, err := parseSignatureInputValue(w.sigInput, Label)
	if err != nil {
		return Hop{}, fail(ReasonChainMalformed, "hop %d Signature-Input: %s", i, detail(err))
	}
	if err := checkRequestProfile(in); err != nil {
		return Hop{}, fail(ReasonChainMalformed, "hop %d: %s", i, detail(err))
	}
	if in.expires <= in.created {
		return Hop{}, fail(ReasonChainMalformed, "hop %d: expires %d is not after created %d", i, in.expires, in.created)
	}
	covers := in.has(chainComponent.id)
	want := len(in.comps)
	if covers {
		want--
	}
	if len(w.values) != want {
		return Hop{}, fail(ReasonChainMalformed, "hop %d carries %d component values, its Signature-Input covers %d", i, len(w.values), want)
	}
	// A hop that carried a chain must be followed by exactly that chain, and
	// a hop that carried none must be the last: hops after it would be bound
	// to nothing it signed.
	switch {
	case covers && rest == "":
		return Hop{}, fail(ReasonChainBroken, "hop %d covers a chain but no hop follows it", i)
	case !covers && rest != "":
		return Hop{}, fail(ReasonChainBroken, "hop %d covers no chain but hops follow it", i)
	}
	var b strings.Builder
	b.Grow(len(w.sigInput) + 64*len(in.comps) + len(rest))
	var audience, capability string
	k := 0
	for _, c := range in.comps {
		if c.req || c.hasK {
			return Hop{}, fail(ReasonChainMalformed, "hop %d covers %s, a parameterized component", i, c.id)
		}
		var v string
		if c.id == chainComponent.id {
			v = rest
		} else {
			v = w.values[k]
			k++
		}
		if strings.ContainsAny(v, "\r\n") {
			return Hop{}, fail(ReasonChainMalformed, "hop %d: component %s contains a line break", i, c.id)
		}
		switch c.name {
		case "treaty-audience":
			audience = v
		case "treaty-capability":
			capability = v
		}
		b.WriteString(c.id)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(in.params)
	base := b.String()

	caller, err := identity.ParseDID(in.keyid)
	if err != nil {
		return Hop{}, fail(ReasonChainMalformed, "hop %d keyid %s is not a did:key", i, quote(in.keyid))
	}
	aud, err := identity.ParseDID(audience)
	if err != nil {
		return Hop{}, fail(ReasonChainMalformed, "hop %d Treaty-Audience %s is not a did:key", i, quote(audience))
	}
	if !ValidCapabilityName(capability) {
		return Hop{}, fail(ReasonChainMalformed, "hop %d capability %s is not 1..64 bytes of [a-z0-9._-]", i, quote(capability))
	}
	return Hop{
		Caller:         caller,
		Audience:       aud,
		Capability:     capability,
		Created:        time.Unix(in.created, 0),
		Expires:        time.Unix(in.expires, 0),
		Nonce:          in.nonce,
		Digest:         sha256.Sum256([]byte(base)),
		SignatureInput: w.sigInput,
		Signature:      signatureHeader(Label, w.sig),
		Base:           base,
	}, nil
}

// verifyChain parses and verifies the Treaty-Chain value v of a request
// from peer to self, in this order, so that only an authentic chain is ever
// refused for its depth or a loop (a forgery always reads chain_broken or
// chain_malformed), while the work stays bounded by MaxChainHops
// signature checks:
//
//	parse      canonical structure, at most MaxChainHops hops  (chain_malformed, chain_too_deep)
//	per hop    contents, the link to the previous hop, then the signature  (chain_malformed, chain_broken)
//	depth      1 + hops <= maxDepth  (chain_too_deep)
//	loop       no key twice on [self, peer, hop callers...]  (chain_loop)
//
// A hop's signature is checked with the caller's expanded key when keys
// (or nil) already holds it.
func verifyChain(v string, peer, self identity.PublicKey, maxDepth int, keys *keyCache) (Chain, error) {
	ws, suffixes, err := parseChain(v)
	if err != nil {
		return nil, err
	}
	c := make(Chain, len(ws))
	for i, w := range ws {
		h, err := openHop(i, w, suffixes[i+1])
		if err != nil {
			return nil, err
		}
		want := peer
		if i > 0 {
			want = c[i-1].Caller
		}
		if h.Audience != want {
			return nil, fail(ReasonChainBroken, "hop %d is addressed to %s, not to %s who made the next call", i, h.Audience.Short(), want.Short())
		}
		if !keys.verify(h.Caller, []byte(h.Base), w.sig) {
			return nil, fail(ReasonChainBroken, "hop %d signature does not verify with its keyid %s", i, h.Caller.Short())
		}
		c[i] = h
	}
	if d := 1 + len(c); d > maxDepth {
		return nil, fail(ReasonChainTooDeep, "delegation depth %d exceeds max_depth %d", d, maxDepth)
	}
	if err := checkLoop(self, peer, c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkLoop refuses a path [callee, caller, c[0].Caller, ...] on which a
// key appears twice: a call coming back to the callee, or passing one peer
// twice. Positions in the detail index the delegation path [caller, ...].
func checkLoop(self, peer identity.PublicKey, c Chain) error {
	path := make([]identity.PublicKey, 0, 2+len(c))
	path = append(path, self, peer)
	for _, h := range c {
		path = append(path, h.Caller)
	}
	for i := 1; i < len(path); i++ {
		for j := 0; j < i; j++ {
			if path[i] == path[j] {
				if j == 0 {
					return fail(ReasonChainLoop, "%s, the callee, is already on the delegation path (position %d)", path[i].Short(), i-1)
				}
				return fail(ReasonChainLoop, "%s appears twice on the delegation path (positions %d and %d)", path[i].Short(), j-1, i-1)
			}
		}
	}
	return nil
}

// splitHop turns a Hop back into the parts Treaty-Chain carries (its
// Signature-Input parsed as canonical, hence printable ASCII), and
// returns the value its signature base holds for "treaty-chain" (covers
// false when it has none).
func splitHop(h Hop) (w hopWire, chainValue string, covers bool, err error) {
	in, err := parseSignatureInputValue(h.SignatureInput, Label)
	if err != nil {
		return hopWire{}, "", false, err
	}
	sig, err := parseSignatureValue(h.Signature, Label)
	if err != nil {
		return hopWire{}, "", false, err
	}
	if len(sig) != 64 {
		return hopWire{}, "", false, fmt.Errorf("signature is %d bytes, want 64", len(sig))
	}
	lines := strings.Split(h.Base, "\n")
	if len(lines) != len(in.comps)+1 || lines[len(in.comps)] != `"@signature-params": `+in.params {
		return hopWire{}, "", false, errors.New("Base does not match Signature-Input")
	}
	w = hopWire{sigInput: h.SignatureInput, sig: sig, values: make([]string, 0, len(in.comps))}
	for j, c := range in.comps {
		v, ok := strings.CutPrefix(lines[j], c.id+": ")
		if !ok {
			return hopWire{}, "", false, fmt.Errorf("Base line %d is not %s", j, c.id)
		}
		if c.id == chainComponent.id {
			chainValue, covers = v, true
			continue
		}
		w.values = append(w.values, v)
	}
	return w, chainValue, covers, nil
}

// encodeChain checks c for an onward call from signer to audience and
// returns its Treaty-Chain value. It checks what the callee will check
// except the hop signatures (they were verified when the hops arrived):
// structure, the hop-to-hop links, that c[0] was addressed to signer, the
// size bounds, and that audience is not already on the path. A loop or an
// over-deep chain is an *Error (ReasonChainLoop, ReasonChainTooDeep).
func encodeChain(c Chain, signer, audience identity.PublicKey) (string, error) {
	if len(c) > MaxChainHops {
		return "", fail(ReasonChainTooDeep, "%d hops, max %d", len(c), MaxChainHops)
	}
	ws := make([]hopWire, len(c))
	chainValues := make([]string, len(c))
	covers := make([]bool, len(c))
	for i, h := range c {
		var err error
		if ws[i], chainValues[i], covers[i], err = splitHop(h); err != nil {
			return "", fmt.Errorf("hop %d: %w", i, err)
		}
	}
	v, suffixes := encodeHops(ws)
	if len(v) > MaxChainBytes {
		return "", fmt.Errorf("Treaty-Chain would be %d bytes, max %d", len(v), MaxChainBytes)
	}
	opened := make(Chain, len(c))
	for i := range c {
		if covers[i] && chainValues[i] != suffixes[i+1] {
			return "", fmt.Errorf("hop %d: the chain it covers is not the hops after it", i)
		}
		h, err := openHop(i, ws[i], suffixes[i+1])
		if err != nil {
			return "", err
		}
		want := signer
		if i > 0 {
			want = opened[i-1].Caller
		}
		if h.Audience != want {
			return "", fmt.Errorf("hop %d is addressed to %s, not %s", i, h.Audience.Short(), want.Short())
		}
		opened[i] = h
	}
	if err := checkLoop(audience, signer, opened); err != nil {
		return "", err
	}
	return v, nil
}

// detail returns the Detail of a wire *Error, or the error text.
func detail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason.String() + ": " + e.Detail
	}
	return err.Error()
}
