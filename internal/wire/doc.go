// Package wire is treaty's federation protocol: it signs and verifies
// requests, responses and event streams between nodes, so that a callee
// serves only fresh requests addressed to it by the key its TLS handshake
// proved, and a caller keeps a receipt that the callee answered exactly its
// request.
//
// # Requests (profile treaty/1 of RFC 9421 and RFC 9530)
//
// SignRequest sets:
//
//	Content-Digest:    sha-256=:BASE64(sha256(body)):
//	Treaty-Audience:   did:key of the callee
//	Treaty-Capability: the capability, 1..64 bytes of [a-z0-9._-]
//	Signature-Input:   treaty=("@method" "@authority" "@path" "@query" "content-digest" \
//	                   "treaty-audience" "treaty-capability");created=C;expires=E; \
//	                   nonce="N";alg="ed25519";keyid="did:key:CALLER";tag="treaty/1"
//	Signature:         treaty=:BASE64(ed25519(signature base)):
//
// The signature base is built exactly as RFC 9421 §2.5 says, with
// structured fields serialized by github.com/dunglas/httpsfv; tests check it
// against the RFC's own vectors (Appendix B.2.6 ed25519, B.2.4 and §2.4
// responses). "@authority", "@path" and "@query" are covered instead of
// "@target-uri" because they are exactly what the client sends as
// :authority and :path, while the scheme a server infers depends on where
// TLS terminates. A verifier accepts extra covered components but requires
// these seven, and refuses Signature and Signature-Input headers that are not
// canonical structured fields or hold any label but "treaty" (a duplicated
// label is thus refused, not resolved).
//
// Verifier.VerifyRequest runs parse, checkAudience, checkWindow,
// checkDigest, checkSignature, checkChain and checkNonce, in that order; each
// failure is an *Error with one Reason. The signature is checked with the key the TLS
// handshake proved, and keyid must name that same key. Freshness: expires -
// created <= MaxTTL (default 30 s, SignRequest's DefaultTTL), created <=
// now+MaxSkew and now <= expires+MaxSkew (default skew 30 s). Nonces are
// remembered per peer until expires+MaxSkew in a ReplayWindow whose size is
// bounded, in total and per peer; a full window or share refuses rather than
// evicting unexpired nonces. Verifier.Forget returns the nonce of a request
// refused before it was served. With a ReplayJournal the window is also
// kept on disk, so a new Verifier (a restarted node) still refuses a request
// an earlier one served; without one it lives in memory only.
//
// # Delegation chains
//
// A call made while serving another (SignParams.Chain = ChainFrom(served))
// also sets Treaty-Chain, and its signature covers "treaty-chain" after the
// seven components above. The header is an RFC 8941 list with one inner
// list per upstream request, nearest first: its Signature-Input as an
// sf-string, its signature and its covered component values as byte
// sequences, the nested chain left out because it is the rest of the list
// (format in chain.go). checkChain rebuilds each hop's signature base,
// verifies it with the hop's keyid, checks that each hop was addressed to
// the peer that made the next call (the first to the handshake peer), that
// 1 + hops <= MaxDepth (default 4, at most 8) and that no key appears twice
// on [this node, peer, hop callers...]; refusals are chain_malformed,
// chain_broken, chain_too_deep and chain_loop. Hops are not checked for
// freshness: a chain only adds refusals and never grants anything.
//
// # Responses and receipts
//
// SignResponse covers "@status", "content-digest" and the request's own
// signature, `"signature";req;key="treaty"` (RFC 9421 §2.4 and §2.1.2), with
// created, alg, keyid (the callee) and tag. VerifyResponse checks it with the
// callee's pinned key and returns a Receipt; Receipt.Verify re-checks both
// the request signature (caller) and the response signature (callee)
// offline, from the JSON alone. A refusal of a request that failed
// verification is bound to that request's signature only when the handshake
// peer made it (Verifier.UnverifiedRequest), else to NoRequestSignature, so
// no peer can obtain a refusal bound to another caller's signature.
//
// # Streams
//
// A stream response is NDJSON (StreamContentType): data events with seq
// 1, 2, 3, ..., then one End event whose sig signs the running sha-256 of
// every data line and the request's signature. Every line must be exactly
// what StreamWriter writes for its event, so the signed bytes have one
// reading in every JSON parser. StreamReader reports a gap,
// reorder, duplicate, oversize event, too many events, truncation (EOF
// before End) or a bad End signature as typed errors.
//
// # Limits
//
// Limits names every bound a call has (body, header, time to first byte,
// call timeout, concurrent calls per peer, stream events and event size)
// with defaults; exceeding one yields a *LimitError naming the limit and
// its value, which travels to the peer inside a signed Failure envelope.
package wire
