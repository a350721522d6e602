package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Checkpoint is a signed statement of the log's size and root hash: a C2SP
// tlog-checkpoint (https://c2sp.org/tlog-checkpoint) in a C2SP signed note
// (https://c2sp.org/signed-note) by the node's ed25519 key, whose key name is
// the origin. Note holds the exact signed bytes:
//
//	treaty/did:key:z6Mk...
//	42
//	<base64 of the 32-byte root>
//
//	— treaty/did:key:z6Mk... <base64 of key hash and signature>
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [32]byte // RFC 6962 tree hash; SHA-256("") for the empty log
	Note   []byte
}

// MaxNoteSize bounds the signed notes OpenCheckpoint accepts from peers.
const MaxNoteSize = 16 << 10

// Errors from OpenCheckpoint.
var (
	ErrBadSignature = errors.New("audit: checkpoint signature does not verify with the peer's key")
	ErrBadNote      = errors.New("audit: malformed checkpoint")
)

// OriginFor is the checkpoint origin of the log kept by the node with key pub.
// Witnesses require it: binding the origin to the key leaves a node exactly one
// log that it can show to its peers.
func OriginFor(pub identity.PublicKey) string { return "treaty/" + pub.String() }

// noteSigner signs notes with an identity key under the note key name origin.
type noteSigner struct {
	name string
	hash uint32
	key  identity.PrivateKey
}

var _ note.Signer = (*noteSigner)(nil)

func newNoteSigner(origin string, key identity.PrivateKey) (*noteSigner, error) {
	v, err := noteVerifier(origin, key.Public())
	if err != nil {
		return nil, err
	}
	return &noteSigner{name: origin, hash: v.KeyHash(), key: key}, nil
}

func (s *noteSigner) Name() string                    { return s.name }
func (s *noteSigner) KeyHash() uint32                 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) { return s.key.Sign(msg), nil }

// noteVerifier is the standard note verifier for an ed25519 key and name.
func noteVerifier(name string, pub identity.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub.Ed25519())
	if err != nil {
		return nil, fmt.Errorf("audit: origin %q is not a valid note key name (non-empty UTF-8, no spaces, no '+'): %w", name, err)
	}
	return note.NewVerifier(vkey)
}

// checkpointText is the unsigned body of a checkpoint.
func checkpointText(origin string, size uint64, root [32]byte) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

func (s *noteSigner) checkpoint(size uint64, root [32]byte) (Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: checkpointText(s.name, size, root)}, s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: s.name, Size: size, Root: root, Note: msg}, nil
}

// OpenCheckpoint parses a signed checkpoint note and verifies that pub signed it
// under the key name given by the note's own origin line. Other signatures
// (witness cosignatures) are ignored. It never panics on peer input; errors wrap
// ErrBadNote or ErrBadSignature.
func OpenCheckpoint(msg []byte, pub identity.PublicKey) (Checkpoint, error) {
	if len(msg) > MaxNoteSize {
		return Checkpoint{}, fmt.Errorf("%w: note is %d bytes, at most %d", ErrBadNote, len(msg), MaxNoteSize)
	}
	if pub.IsZero() {
		return Checkpoint{}, fmt.Errorf("%w: no key to verify with", ErrBadSignature)
	}
	origin, _, ok := bytes.Cut(msg, []byte("\n"))
	if !ok || len(origin) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: no origin line", ErrBadNote)
	}
	v, err := noteVerifier(string(origin), pub)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadNote, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadNote, err)
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != string(origin) {
		return Checkpoint{}, fmt.Errorf("%w: origin mismatch", ErrBadNote)
	}
	cp.Note = bytes.Clone(msg)
	return cp, nil
}

// parseCheckpointText parses the checkpoint body: origin, decimal size without
// leading zeros (at most 2^63-1, what tlog can prove), canonical standard base64
// of a 32-byte root, then optional non-empty extension lines, which are ignored.
func parseCheckpointText(text string) (Checkpoint, error) {
	bad := func(why string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrBadNote, why)
	}
	if !strings.HasSuffix(text, "\n") {
		return bad("text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return bad("fewer than three lines")
	}
	for _, l := range lines {
		if l == "" {
			return bad("empty line")
		}
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || size > math.MaxInt64 || strconv.FormatUint(size, 10) != lines[1] {
		return bad("size is not a canonical decimal in [0, 2^63-1]")
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return bad("root is not canonical base64 of 32 bytes")
	}
	cp := Checkpoint{Origin: lines[0], Size: size}
	copy(cp.Root[:], root)
	return cp, nil
}
