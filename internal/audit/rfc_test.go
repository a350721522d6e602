package audit

// An independent RFC 6962 / RFC 9162 verifier: only crypto/sha256, nothing
// from this package or from tlog. The proofs `treaty audit prove` exports must
// check with it.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// rfcLeafHash is MTH({d}) = SHA-256(0x00 || d), RFC 6962 §2.1.
func rfcLeafHash(d []byte) [32]byte {
	return sha256.Sum256(append([]byte{0x00}, d...))
}

// rfcNodeHash is SHA-256(0x01 || left || right).
func rfcNodeHash(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

// rfcRoot is MTH(D[n]) by the recursive definition: split at the largest
// power of two smaller than n.
func rfcRoot(d [][]byte) [32]byte {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return rfcLeafHash(d[0])
	}
	k := 1
	for k*2 < len(d) {
		k *= 2
	}
	return rfcNodeHash(rfcRoot(d[:k]), rfcRoot(d[k:]))
}

// rfcVerifyInclusion is RFC 9162 §2.1.3.2, step by step.
func rfcVerifyInclusion(leafIndex, treeSize uint64, leaf []byte, path [][32]byte, root [32]byte) bool {
	if leafIndex >= treeSize {
		return false
	}
	fn, sn := leafIndex, treeSize-1
	r := rfcLeafHash(leaf)
	for _, p := range path {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = rfcNodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = rfcNodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}

// checkExportedProof checks the JSON of `prove --json` the way an outside
// auditor would: decode the contract fields, verify the signed note with the
// standard note verifier, compare its size and root, run the RFC path.
func checkExportedProof(t *testing.T, js []byte, origin string, pubRaw []byte) bool {
	t.Helper()
	var m struct {
		Index      uint64   `json:"index"`
		Size       uint64   `json:"size"`
		Leaf       string   `json:"leaf"`
		Proof      []string `json:"proof"`
		Root       string   `json:"root"`
		Checkpoint string   `json:"checkpoint"`
	}
	if err := json.Unmarshal(js, &m); err != nil {
		return false
	}
	leaf, err := base64.StdEncoding.DecodeString(m.Leaf)
	if err != nil {
		return false
	}
	rootB, err := hex.DecodeString(m.Root)
	if err != nil || len(rootB) != 32 {
		return false
	}
	var path [][32]byte
	for _, h := range m.Proof {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return false
		}
		path = append(path, [32]byte(b))
	}
	vkey, _ := note.NewEd25519VerifierKey(origin, pubRaw)
	v, _ := note.NewVerifier(vkey)
	n, err := note.Open([]byte(m.Checkpoint), note.VerifierList(v))
	if err != nil {
		return false
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != origin || lines[1] != strconv.FormatUint(m.Size, 10) ||
		lines[2] != base64.StdEncoding.EncodeToString(rootB) {
		return false
	}
	return rfcVerifyInclusion(m.Index, m.Size, leaf, path, [32]byte(rootB))
}

// TestProveIndependent: every entry's exported proof checks with the
// independent verifier at several log sizes, and flipping any byte of the
// leaf, a path hash, the root, or the note makes it fail.
func TestProveIndependent(t *testing.T) {
	key := testKey(t, 1)
	l, _ := openTest(t, key, nil)
	origin := OriginFor(key.Public())
	pub := key.Public().Ed25519()
	n := 0
	for _, size := range []int{1, 2, 3, 5, 8, 13, 32, 33} {
		appendN(t, l, n, size-n)
		n = size
		var leaves [][]byte
		for i := range size {
			p, err := l.Prove(t.Context(), uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if p.Size != uint64(size) {
				t.Fatalf("proof size %d, want %d", p.Size, size)
			}
			js, _ := json.Marshal(p)
			if !checkExportedProof(t, js, origin, pub) {
				t.Fatalf("size %d index %d: valid proof rejected: %s", size, i, js)
			}
			leaves = append(leaves, p.Leaf)
		}
		if r := rfcRoot(leaves); r != mustCheckpoint(t, l).Root {
			t.Fatalf("size %d: root differs from the recursive MTH", size)
		}
	}
	// Tamper with every byte of one proof in turn.
	p, err := l.Prove(t.Context(), 21)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(name string, b []byte) {
		for i := range b {
			b[i] ^= 0x01
			js, _ := json.Marshal(p)
			if checkExportedProof(t, js, origin, pub) {
				t.Fatalf("%s byte %d flipped: proof still accepted", name, i)
			}
			b[i] ^= 0x01
		}
	}
	flip("leaf", p.Leaf)
	for k := range p.Hashes {
		flip("path hash "+strconv.Itoa(k), p.Hashes[k][:])
	}
	flip("root", p.Root[:])
	flip("checkpoint", p.Checkpoint)
	// Index and size are bound too.
	for _, d := range []struct{ idx, size uint64 }{{20, 33}, {22, 33}, {21, 32}, {21, 34}} {
		q := p
		q.Index, q.Size = d.idx, d.size
		js, _ := json.Marshal(q)
		if checkExportedProof(t, js, origin, pub) {
			t.Fatalf("index %d size %d accepted", d.idx, d.size)
		}
	}
	js, _ := json.Marshal(p)
	if !checkExportedProof(t, js, origin, pub) || !bytes.Equal(js, mustJSON(t, p)) {
		t.Fatal("restored proof rejected")
	}
}

func mustCheckpoint(t *testing.T, l *Log) Checkpoint {
	t.Helper()
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
