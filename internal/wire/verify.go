package wire

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// VerifierConfig configures a Verifier. Zero fields take the documented defaults.
type VerifierConfig struct {
	// Self is this node's key; Treaty-Audience must name it. Required.
	Self identity.PublicKey
	// MaxSkew is the clock difference tolerated in both directions: a request
	// is accepted from created-MaxSkew until expires+MaxSkew. Default 30 s;
	// allowed 0 .. 10 min (set a negative value for an exact zero skew).
	MaxSkew time.Duration
	// MaxTTL bounds expires-created. Default DefaultTTL (30 s), what
	// SignRequest uses; allowed 1 s .. 1 h. A request is thus accepted for at
	// most MaxTTL + MaxSkew after its created (60 s by default).
	MaxTTL time.Duration
	// ReplayCapacity bounds the nonces remembered. Default 1<<20; allowed
	// 1 .. 1<<26. When full of unexpired nonces, requests are refused with
	// ReasonReplayCacheFull; unexpired nonces are never evicted.
	ReplayCapacity int
	// ReplayPerPeer bounds the nonces remembered for any one peer, so that
	// one peer filling its share refuses only its own requests. Default
	// ReplayCapacity/16 (65536: about 1000 calls/s sustained per peer, each
	// nonce held for TTL + MaxSkew = 60 s by default); allowed 1 .. ReplayCapacity.
	ReplayPerPeer int
	// MaxDepth bounds the delegation depth of a call: 1 + the hops of its
	// Treaty-Chain, so a direct call has depth 1 and MaxDepth 1 refuses every
	// chained call. Default DefaultMaxDepth (4); allowed 1 .. 8.
	MaxDepth int
	// KeyCache bounds the peers whose expanded keys (identity.ExpandedKey,
	// about 1.5 KiB each) are kept, so that each peer's key is expanded once
	// and not on every signature. Default DefaultKeyCache (1024, about
	// 1.5 MiB); allowed 1 .. 65536. When full, an arbitrary key makes room.
	KeyCache int
	// Journal, when set, keeps the replay window on disk across restarts
	// (OpenReplayJournal): its entries are restored into the window, each
	// nonce recorded is appended to it before its request is accepted, and
	// Close closes it. A journal serves one Verifier.
	Journal *ReplayJournal
}

// DefaultKeyCache is VerifierConfig.KeyCache's default.
const DefaultKeyCache = 1024

// Verifier checks inbound treaty requests, and the responses to this node's
// own requests. It is safe for concurrent use; its replay window is shared by
// all callers and guarded by a mutex.
type Verifier struct {
	self    identity.PublicKey
	selfDID string
	keys    keyCache
	skew    time.Duration
	maxTTL  time.Duration
	depth   int
	mu      sync.Mutex
	replays *ReplayWindow
	journal *ReplayJournal // nil: the window lives in memory only
}

// NewVerifier fills defaults and validates cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Self.IsZero() {
		return nil, fmt.Errorf("wire: VerifierConfig.Self is zero")
	}
	switch {
	case cfg.MaxSkew == 0:
		cfg.MaxSkew = 30 * time.Second
	case cfg.MaxSkew < 0:
		cfg.MaxSkew = 0
	case cfg.MaxSkew > 10*time.Minute:
		return nil, fmt.Errorf("wire: VerifierConfig.MaxSkew = %v, want 0..10m", cfg.MaxSkew)
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultTTL
	}
	if cfg.MaxTTL < time.Second || cfg.MaxTTL > time.Hour {
		return nil, fmt.Errorf("wire: VerifierConfig.MaxTTL = %v, want 1s..1h", cfg.MaxTTL)
	}
	if cfg.ReplayCapacity == 0 {
		cfg.ReplayCapacity = 1 << 20
	}
	if cfg.ReplayCapacity < 1 || cfg.ReplayCapacity > 1<<26 {
		return nil, fmt.Errorf("wire: VerifierConfig.ReplayCapacity = %d, want 1..%d", cfg.ReplayCapacity, 1<<26)
	}
	if cfg.ReplayPerPeer == 0 {
		cfg.ReplayPerPeer = max(cfg.ReplayCapacity/16, 1)
	}
	if cfg.ReplayPerPeer < 1 || cfg.ReplayPerPeer > cfg.ReplayCapacity {
		return nil, fmt.Errorf("wire: VerifierConfig.ReplayPerPeer = %d, want 1..%d", cfg.ReplayPerPeer, cfg.ReplayCapacity)
	}
	if cfg.MaxDepth == 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.MaxDepth < 1 || cfg.MaxDepth > maxDepthLimit {
		return nil, fmt.Errorf("wire: VerifierConfig.MaxDepth = %d, want 1..%d", cfg.MaxDepth, maxDepthLimit)
	}
	if cfg.KeyCache == 0 {
		cfg.KeyCache = DefaultKeyCache
	}
	if cfg.KeyCache < 1 || cfg.KeyCache > 1<<16 {
		return nil, fmt.Errorf("wire: VerifierConfig.KeyCache = %d, want 1..%d", cfg.KeyCache, 1<<16)
	}
	w, err := NewReplayWindow(cfg.ReplayCapacity, cfg.ReplayPerPeer)
	if err != nil {
		return nil, err
	}
	if j := cfg.Journal; j != nil {
		if j.taken {
			return nil, fmt.Errorf("wire: VerifierConfig.Journal already serves another Verifier")
		}
		j.taken = true
		// Longer than any nonce is held (until <= created + MaxTTL +
		// MaxSkew <= now + MaxTTL + 2*MaxSkew), so a rotation drops only
		// expired entries.
		j.period = cfg.MaxTTL + 2*cfg.MaxSkew + time.Second
		for _, e := range j.live {
			w.restore(e.peer, e.key, e.until)
		}
		j.live = nil
	}
	return &Verifier{self: cfg.Self, selfDID: cfg.Self.String(), skew: cfg.MaxSkew, maxTTL: cfg.MaxTTL, depth: cfg.MaxDepth,
		replays: w, journal: cfg.Journal, keys: keyCache{max: cfg.KeyCache, m: make(map[identity.PublicKey]*identity.ExpandedKey)}}, nil
}

// Close closes the replay journal, if there is one. The Verifier must not
// be used after.
func (v *Verifier) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.journal.Close()
}

// Request is a verified inbound request: every field below was covered by a
// signature that verified with the handshake key.
type Request struct {
	Peer       identity.PublicKey // the caller: the handshake key, which keyid named
	Audience   identity.PublicKey // this node (Treaty-Audience named it)
	Capability string
	Created    time.Time
	Expires    time.Time
	Nonce      string
	// Digest is sha256 of the signature base: the request's identity in
	// audit, equal to Sent.Digest at the caller.
	Digest [32]byte
	// Base is the RFC 9421 signature base the caller signed.
	Base string
	// SignatureInput and Signature are the raw header values; SignResponse
	// and NewStreamWriter bind the response to Signature.
	SignatureInput string
	Signature      string
	// Chain is the delegation chain the request carried, nearest hop first
	// (nil for a direct call): each hop's signature verified with its
	// Caller's key and each hop is linked to the next (see chain.go).
	Chain Chain

	nonceKey ReplayKey // the nonce's entry in the replay window, for Forget
}

// verifyState carries one request through the named steps of VerifyRequest.
type verifyState struct {
	r    *http.Request
	body []byte
	peer identity.PublicKey
	now  time.Time

	in         *sigInput
	sig        []byte
	sigInput   string
	sigHeader  string
	nonceKey   ReplayKey
	audience   string
	capability string
	digest     string
	base       string
	chainValue string // the Treaty-Chain value, trimmed as the signature base reads it
	hasChain   bool
	chain      Chain
}

// VerifyRequest checks req (whose body the caller already read, within
// Limits.MaxBodyBytes, into body) in these steps, stopping at the first failure:
//
//	parse          headers present, structured fields valid and canonical, profile respected
//	checkAudience  Treaty-Audience is this node
//	checkWindow    created/expires within MaxTTL and MaxSkew of now
//	checkDigest    Content-Digest matches body
//	checkSignature keyid names peer, and the signature verifies with peer
//	checkChain     Treaty-Chain, when present: every hop verifies and links
//	               to the next, depth within MaxDepth, no loop (chain.go)
//	checkNonce     the nonce is unseen; it is recorded only now, after the
//	               signature and the chain verified, so forgeries cannot fill
//	               the window, and within the peer's share of the window
//
// A nonce is recorded by VerifyRequest, so a concurrent replay of the same
// request is refused; a caller that then refuses the request before it cost
// the peer anything (trust and budget gates) calls Forget, so a refused
// request does not burn its nonce.
//
// peer is the key the TLS handshake proved; the signature is verified with
// that key and never with a key the request names. Every error is an *Error.
func (v *Verifier) VerifyRequest(req *http.Request, body []byte, peer identity.PublicKey, now time.Time) (Request, error) {
	s := &verifyState{r: req, body: body, peer: peer, now: now}
	for _, step := range []func(*verifyState) error{
		v.parse, v.checkAudience, v.checkWindow, v.checkDigest, v.checkSignature, v.checkChain, v.checkNonce,
	} {
		if err := step(s); err != nil {
			return Request{}, err
		}
	}
	return Request{
		Peer:           peer,
		Audience:       v.self,
		Capability:     s.capability,
		Created:        time.Unix(s.in.created, 0),
		Expires:        time.Unix(s.in.expires, 0),
		Nonce:          s.in.nonce,
		Digest:         sha256.Sum256([]byte(s.base)),
		Base:           s.base,
		SignatureInput: s.sigInput,
		Signature:      s.sigHeader,
		Chain:          s.chain,
		nonceKey:       s.nonceKey,
	}, nil
}

// Forget removes req's nonce from the replay window: req was refused before
// it was served, so sending it again is not a replay of anything done.
// It does nothing for a Request that VerifyRequest did not return.
func (v *Verifier) Forget(req Request) {
	if req.Nonce == "" {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.replays.Remove(req.nonceKey)
	if v.journal != nil {
		// Best effort: a lost tombstone only refuses, after a restart, a
		// resend of this very request, as a replay.
		v.journal.write(journalEntry{peer: req.Peer, key: req.nonceKey})
	}
}

// singleton returns the one line of a header that must appear exactly once.
func singleton(h http.Header, name string, max int) (string, error) {
	lines := h.Values(name)
	switch {
	case len(lines) == 0:
		return "", fail(ReasonMissingComponent, "%s is absent", name)
	case len(lines) > 1:
		return "", fail(ReasonMalformed, "%s appears %d times", name, len(lines))
	case len(lines[0]) > max:
		return "", fail(ReasonMalformed, "%s exceeds %d bytes", name, max)
	}
	return lines[0], nil
}

func (v *Verifier) parse(s *verifyState) error {
	if s.r == nil {
		return fail(ReasonMalformed, "no request")
	}
	if s.peer.IsZero() {
		return fail(ReasonKeyMismatch, "no handshake key")
	}
	h := s.r.Header
	si, ok, err := joinLines(h, HeaderSignatureInput, maxSignatureInputBytes)
	if err != nil {
		return err
	}
	if !ok {
		return fail(ReasonMissingComponent, "Signature-Input is absent")
	}
	in, err := parseSignatureInputValue(si, Label)
	if err != nil {
		return err
	}
	sh, ok, err := joinLines(h, HeaderSignature, maxSignatureBytes)
	if err != nil {
		return err
	}
	if !ok {
		return fail(ReasonMissingComponent, "Signature is absent")
	}
	sig, err := parseSignatureValue(sh, Label)
	if err != nil {
		return err
	}
	if len(sig) != 64 {
		return fail(ReasonMalformed, "signature is %d bytes, want 64", len(sig))
	}
	if err := checkRequestProfile(in); err != nil {
		return err
	}
	if s.audience, err = singleton(h, HeaderAudience, 128); err != nil {
		return err
	}
	if s.capability, err = singleton(h, HeaderCapability, 64); err != nil {
		return err
	}
	if !ValidCapabilityName(s.capability) {
		return fail(ReasonMalformed, "capability %s is not 1..64 bytes of [a-z0-9._-]", quote(s.capability))
	}
	d, ok, err := joinLines(h, HeaderContentDigest, maxDigestHeaderBytes)
	if err != nil {
		return err
	}
	if !ok {
		return fail(ReasonMissingComponent, "Content-Digest is absent")
	}
	// Treaty-Chain is parsed by checkChain, once the signature verified; a
	// second line would be joined into one value by the signature base, so it
	// is refused here, as is a chain the signature does not cover.
	switch lines := h.Values(HeaderChain); {
	case len(lines) > 1:
		return fail(ReasonChainMalformed, "Treaty-Chain appears %d times", len(lines))
	case len(lines) == 1 && !in.has(chainComponent.id):
		return fail(ReasonChainMalformed, "Treaty-Chain is present but the signature does not cover it")
	case len(lines) == 1:
		s.chainValue, s.hasChain = strings.Trim(lines[0], " \t"), true
	}
	s.in, s.sig, s.sigInput, s.sigHeader, s.digest = in, sig, si, sh, d
	return nil
}

// checkRequestProfile checks what treaty/1 requires of a request's
// signature parameters; hops of a chain are held to the same profile.
func checkRequestProfile(in *sigInput) error {
	for _, c := range requestComponents {
		if !in.has(c.id) {
			return fail(ReasonMissingComponent, "signature does not cover %s", c.id)
		}
	}
	switch {
	case !in.hasCreated || !in.hasExpires:
		return fail(ReasonMalformed, "signature parameters created and expires are required")
	case in.alg != Alg:
		return fail(ReasonMalformed, "alg = %s, want %q", quote(in.alg), Alg)
	case in.tag != Tag:
		return fail(ReasonMalformed, "tag = %s, want %q", quote(in.tag), Tag)
	case in.keyid == "":
		return fail(ReasonMalformed, "keyid is required")
	case !validNonce(in.nonce):
		return fail(ReasonMalformed, "nonce %s is not 16..64 base64url characters", quote(in.nonce))
	}
	return nil
}

func (v *Verifier) checkAudience(s *verifyState) error {
	// did:key has one canonical form (ParseDID refuses others), so string
	// equality is key equality; parse only to explain a refusal.
	if s.audience == v.selfDID {
		return nil
	}
	aud, err := identity.ParseDID(s.audience)
	if err != nil {
		return fail(ReasonBadAudience, "Treaty-Audience %s is not a did:key", quote(s.audience))
	}
	if !aud.Equal(v.self) {
		return fail(ReasonBadAudience, "Treaty-Audience is %s, this node is %s", aud.Short(), v.self.Short())
	}
	return nil
}

func (v *Verifier) checkWindow(s *verifyState) error {
	created, expires := time.Unix(s.in.created, 0), time.Unix(s.in.expires, 0)
	switch {
	case s.in.expires <= s.in.created:
		return fail(ReasonMalformed, "expires %d is not after created %d", s.in.expires, s.in.created)
	case expires.Sub(created) > v.maxTTL:
		return fail(ReasonTTLTooLong, "lifetime %v exceeds max_ttl %v", expires.Sub(created), v.maxTTL)
	case created.After(s.now.Add(v.skew)):
		return fail(ReasonNotYetValid, "created %v is ahead of now %v by more than %v", created.UTC(), s.now.UTC(), v.skew)
	case s.now.After(expires.Add(v.skew)):
		return fail(ReasonExpired, "expired at %v, now %v, skew %v", expires.UTC(), s.now.UTC(), v.skew)
	}
	return nil
}

func (v *Verifier) checkDigest(s *verifyState) error {
	cd, err := ParseContentDigest(s.digest)
	if err != nil {
		return err
	}
	return cd.Check(s.body)
}

func (v *Verifier) checkSignature(s *verifyState) error {
	if s.in.keyid != s.peer.String() {
		kid, err := identity.ParseDID(s.in.keyid)
		if err != nil {
			return fail(ReasonKeyMismatch, "keyid %s is not a did:key", quote(s.in.keyid))
		}
		return fail(ReasonKeyMismatch, "keyid names %s, the handshake proved %s", kid.Short(), s.peer.Short())
	}
	base, err := signatureBase(requestMessage(s.r), s.in.comps, s.in.params)
	if err != nil {
		return err
	}
	if !v.keys.get(s.peer).Verify([]byte(base), s.sig) {
		return fail(ReasonBadSignature, "signature does not verify with %s", s.peer.Short())
	}
	s.base = base
	return nil
}

func (v *Verifier) checkChain(s *verifyState) error {
	if !s.hasChain {
		return nil
	}
	c, err := verifyChain(s.chainValue, s.peer, v.self, v.depth, &v.keys)
	if err != nil {
		return err
	}
	s.chain = c
	return nil
}

func (v *Verifier) checkNonce(s *verifyState) error {
	h := sha256.New()
	h.Write(s.peer.Bytes())
	h.Write([]byte(s.in.nonce))
	copy(s.nonceKey[:], h.Sum(nil))
	until := time.Unix(s.in.expires, 0).Add(v.skew)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.replays.Add(s.peer, s.nonceKey, until, s.now); err != nil || v.journal == nil {
		return err
	}
	// On disk before the request is accepted, so a restart cannot forget it.
	if err := v.journal.append(journalEntry{peer: s.peer, key: s.nonceKey, until: until.UnixNano()}, s.now); err != nil {
		v.replays.Remove(s.nonceKey)
		return fail(ReasonReplayCacheFull, "%v", err)
	}
	return nil
}

// ReplayLen returns the nonces currently remembered (for metrics and tests).
func (v *Verifier) ReplayLen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.replays.Len()
}

// ReplayPeerLen returns the nonces currently remembered for peer.
func (v *Verifier) ReplayPeerLen(peer identity.PublicKey) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.replays.PeerLen(peer)
}

// keyCache keeps the expanded keys of recent peers: expanding a key costs
// about as much as it saves on one verification, and a peer signs every
// request and every response. It holds at most max keys.
type keyCache struct {
	mu  sync.Mutex
	max int
	m   map[identity.PublicKey]*identity.ExpandedKey
}

// get returns p's expanded key, expanding and keeping it on first use.
func (c *keyCache) get(p identity.PublicKey) *identity.ExpandedKey {
	c.mu.Lock()
	k, ok := c.m[p]
	c.mu.Unlock()
	if ok {
		return k
	}
	k = p.Expand() // outside the lock: it takes microseconds
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m { // an arbitrary key makes room
			delete(c.m, old)
			break
		}
	}
	c.m[p] = k
	return k
}

// verify checks sig with p's expanded key when c holds it, else with p
// itself; it never adds p, so keys a request only names (a chain's hops)
// cannot push out the peers that sign every call. c may be nil.
func (c *keyCache) verify(p identity.PublicKey, msg, sig []byte) bool {
	if c != nil {
		c.mu.Lock()
		k, ok := c.m[p]
		c.mu.Unlock()
		if ok {
			return k.Verify(msg, sig)
		}
	}
	return p.Verify(msg, sig)
}

// len returns the keys kept (for tests).
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
