package wire

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"

	"github.com/dunglas/httpsfv"
)

// ContentDigest is a parsed RFC 9530 Content-Digest field. treaty sends
// sha-256 and also accepts sha-512; other algorithms are ignored as RFC 9530
// §2 allows, but at least one supported digest must be present.
type ContentDigest struct {
	SHA256 *[sha256.Size]byte
	SHA512 *[sha512.Size]byte
}

// ContentDigestHeader returns the Content-Digest value treaty sends for body:
// `sha-256=:BASE64:`.
func ContentDigestHeader(body []byte) string {
	sum := sha256.Sum256(body)
	return byteMember("sha-256", sum[:])
}

// ParseContentDigest parses a Content-Digest value. It fails (ReasonMalformed)
// on a structured-field error, a wrong-length digest, a duplicated algorithm,
// a digest with parameters, or when no supported algorithm is present.
func ParseContentDigest(v string) (ContentDigest, error) {
	var cd ContentDigest
	if len(v) > maxDigestHeaderBytes {
		return cd, fail(ReasonMalformed, "Content-Digest exceeds %d bytes", maxDigestHeaderBytes)
	}
	if b, ok := fastByteMember(v, "sha-256", sha256.Size); ok {
		cd.SHA256 = (*[sha256.Size]byte)(b)
		return cd, nil
	}
	d, err := parseDict("Content-Digest", v)
	if err != nil {
		return cd, err
	}
	for _, alg := range d.Names() {
		m, _ := d.Get(alg)
		if alg != "sha-256" && alg != "sha-512" {
			continue
		}
		it, ok := m.(httpsfv.Item)
		if !ok {
			return cd, fail(ReasonMalformed, "Content-Digest %s is not a byte sequence", alg)
		}
		b, ok := it.Value.([]byte)
		if !ok {
			return cd, fail(ReasonMalformed, "Content-Digest %s is not a byte sequence", alg)
		}
		if it.Params != nil && len(it.Params.Names()) > 0 {
			return cd, fail(ReasonMalformed, "Content-Digest %s has parameters", alg)
		}
		switch alg {
		case "sha-256":
			if len(b) != sha256.Size {
				return cd, fail(ReasonMalformed, "Content-Digest sha-256 is %d bytes, want %d", len(b), sha256.Size)
			}
			cd.SHA256 = new([sha256.Size]byte)
			copy(cd.SHA256[:], b)
		case "sha-512":
			if len(b) != sha512.Size {
				return cd, fail(ReasonMalformed, "Content-Digest sha-512 is %d bytes, want %d", len(b), sha512.Size)
			}
			cd.SHA512 = new([sha512.Size]byte)
			copy(cd.SHA512[:], b)
		}
	}
	if cd.SHA256 == nil && cd.SHA512 == nil {
		return cd, fail(ReasonMalformed, "Content-Digest has neither sha-256 nor sha-512")
	}
	return cd, nil
}

// Check verifies every supported digest present against body
// (ReasonDigestMismatch): a sender cannot pair one honest digest with a
// forged one.
func (cd ContentDigest) Check(body []byte) error {
	if cd.SHA256 == nil && cd.SHA512 == nil {
		return fail(ReasonMalformed, "Content-Digest has neither sha-256 nor sha-512")
	}
	if cd.SHA256 != nil {
		sum := sha256.Sum256(body)
		if subtle.ConstantTimeCompare(sum[:], cd.SHA256[:]) != 1 {
			return fail(ReasonDigestMismatch, "sha-256 of the %d-byte body differs from Content-Digest", len(body))
		}
	}
	if cd.SHA512 != nil {
		sum := sha512.Sum512(body)
		if subtle.ConstantTimeCompare(sum[:], cd.SHA512[:]) != 1 {
			return fail(ReasonDigestMismatch, "sha-512 of the %d-byte body differs from Content-Digest", len(body))
		}
	}
	return nil
}
