package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Proof is an RFC 6962 inclusion proof of one entry in a signed checkpoint.
// Its JSON form is the `treaty audit prove N --json` contract:
//
//	{"index":N,"size":S,"leaf":"BASE64","proof":["HEX",...],"root":"HEX","checkpoint":"signed note text"}
//
// leaf is the exact leaf bytes (hash with SHA-256(0x00 || leaf)); proof is the
// audit path from the leaf up (RFC 9162 §2.1.3); root and size are those of the
// checkpoint, a C2SP signed note by the node's ed25519 key.
type Proof struct {
	Index      uint64
	Size       uint64
	Leaf       []byte
	Hashes     [][32]byte
	Root       [32]byte
	Checkpoint []byte
}

type proofJSON struct {
	Index      uint64   `json:"index"`
	Size       uint64   `json:"size"`
	Leaf       string   `json:"leaf"`
	Proof      []string `json:"proof"`
	Root       string   `json:"root"`
	Checkpoint string   `json:"checkpoint"`
}

// MarshalJSON renders the contract shape, keys in that order.
func (p Proof) MarshalJSON() ([]byte, error) {
	j := proofJSON{
		Index: p.Index, Size: p.Size, Leaf: base64.StdEncoding.EncodeToString(p.Leaf),
		Proof: make([]string, len(p.Hashes)), Root: hex.EncodeToString(p.Root[:]), Checkpoint: string(p.Checkpoint),
	}
	for i, h := range p.Hashes {
		j.Proof[i] = hex.EncodeToString(h[:])
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON parses the contract shape.
func (p *Proof) UnmarshalJSON(b []byte) error {
	var j proofJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	leaf, err := base64.StdEncoding.DecodeString(j.Leaf)
	if err != nil {
		return fmt.Errorf("audit: proof leaf: %w", err)
	}
	out := Proof{Index: j.Index, Size: j.Size, Leaf: leaf, Checkpoint: []byte(j.Checkpoint), Hashes: make([][32]byte, len(j.Proof))}
	if err := decodeHash(&out.Root, j.Root); err != nil {
		return fmt.Errorf("audit: proof root: %w", err)
	}
	for i, s := range j.Proof {
		if err := decodeHash(&out.Hashes[i], s); err != nil {
			return fmt.Errorf("audit: proof hash %d: %w", i, err)
		}
	}
	*p = out
	return nil
}

func decodeHash(dst *[32]byte, s string) error {
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%d bytes, want %d", len(b), len(dst))
	}
	copy(dst[:], b)
	return nil
}

// ErrBadProof is returned by VerifyProof for a proof that does not hold.
var ErrBadProof = errors.New("audit: inclusion proof does not verify")

// VerifyProof checks p against pub: the checkpoint note is signed by pub
// under origin OriginFor(pub) (the one log of pub's that peers witness) and
// states p.Size and p.Root, the leaf names p.Index, and the path leads from
// the leaf to the root. A caller uses it on a peer's receipt.
func VerifyProof(p Proof, pub identity.PublicKey) error {
	cp, err := OpenCheckpoint(p.Checkpoint, pub)
	if err != nil {
		return err
	}
	if want := OriginFor(pub); cp.Origin != want {
		return fmt.Errorf("%w: origin %s, want %q", ErrBadNote, quoteShort(cp.Origin), want)
	}
	if cp.Size != p.Size || cp.Root != p.Root {
		return fmt.Errorf("%w: checkpoint states size %d, proof %d, or another root", ErrBadProof, cp.Size, p.Size)
	}
	if p.Index >= p.Size || p.Size > 1<<63-1 {
		return fmt.Errorf("%w: index %d outside size %d", ErrBadProof, p.Index, p.Size)
	}
	e, err := ParseLeaf(p.Leaf)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	if e.Index != p.Index {
		return fmt.Errorf("%w: leaf carries index %d, proof %d", ErrBadProof, e.Index, p.Index)
	}
	rp := make(tlog.RecordProof, len(p.Hashes))
	for i, h := range p.Hashes {
		rp[i] = h
	}
	if err := tlog.CheckRecord(rp, int64(p.Size), p.Root, int64(p.Index), tlog.RecordHash(p.Leaf)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	return nil
}
