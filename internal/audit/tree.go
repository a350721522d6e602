package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// emptyRoot is the RFC 6962 hash of the empty tree, SHA-256 of nothing.
var emptyRoot = tlog.Hash(sha256.Sum256(nil))

// tree is the right edge of an RFC 6962 Merkle tree: for each level, the most
// recently completed subtree hash. It is enough to append leaves, to produce
// the stored hashes tlog expects for each record, and to compute the root.
// It is a plain value; the owner serialises access.
type tree struct {
	size uint64
	edge [64]tlog.Hash
}

// add appends a leaf with hash lh and appends to dst the stored hashes that
// record completes, in tlog order: the leaf hash, then one hash per completed
// level (tlog.StoredHashesForRecordHash gives the same list).
func (t *tree) add(lh tlog.Hash, dst []byte) []byte {
	i := t.size
	cur := lh
	dst = append(dst, cur[:]...)
	l := 0
	for ; (i>>l)&1 == 1; l++ {
		left := t.edge[l]
		t.edge[l] = cur
		cur = tlog.NodeHash(left, cur)
		dst = append(dst, cur[:]...)
	}
	t.edge[l] = cur
	t.size++
	return dst
}

// root returns the tree hash of all leaves added so far.
func (t *tree) root() tlog.Hash {
	if t.size == 0 {
		return emptyRoot
	}
	var cur tlog.Hash
	first := true
	for n := t.size; n != 0; n &= n - 1 {
		l := bits.TrailingZeros64(n)
		if first {
			cur, first = t.edge[l], false
		} else {
			cur = tlog.NodeHash(t.edge[l], cur)
		}
	}
	return cur
}

// storedLen is the length of the stored-hashes blob of record i.
func storedLen(i uint64) int { return tlog.HashSize * (1 + bits.TrailingZeros64(^i)) }

// leafHasher computes RFC 6962 leaf hashes without allocating per leaf (a
// slice passed through hash.Hash escapes: the prefix byte and the sum live
// in the hasher).
type leafHasher struct {
	h      hash.Hash
	prefix [1]byte // 0x00
	buf    []byte
}

func newLeafHasher() *leafHasher {
	return &leafHasher{h: sha256.New(), buf: make([]byte, 0, sha256.Size)}
}

func (lh *leafHasher) sum(leaf []byte) tlog.Hash {
	var out tlog.Hash
	lh.h.Reset()
	lh.h.Write(lh.prefix[:])
	lh.h.Write(leaf)
	lh.buf = lh.h.Sum(lh.buf[:0])
	copy(out[:], lh.buf)
	return out
}

// querier is a *sql.DB, *sql.Conn or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// dbHashes reads tlog stored hashes from the hashes column: stored hash
// (level, n) was written with record ((n+1)<<level)-1, at offset level*32.
// For records a pruning deleted it falls back to the latest pruning record's
// edge hashes (pr; nil: read from the prunes table on first need). Callers
// check what they build from it against signed checkpoints.
type dbHashes struct {
	ctx context.Context
	q   querier
	pr  *PruneRecord
}

var _ tlog.HashReader = dbHashes{}

func (r dbHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	cache := map[int64][]byte{}
	var edge map[int64]tlog.Hash
	for i, x := range indexes {
		if x < 0 {
			return nil, fmt.Errorf("audit: stored hash index %d", x)
		}
		level, n := tlog.SplitStoredHashIndex(x)
		if level >= 63 {
			return nil, fmt.Errorf("audit: stored hash level %d", level)
		}
		rec := ((n + 1) << level) - 1
		blob, ok := cache[rec]
		if !ok {
			if err := r.q.QueryRowContext(r.ctx, `SELECT hashes FROM entries WHERE idx = ?`, rec).Scan(&blob); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					if edge == nil {
						pr := r.pr
						if pr == nil {
							p, ok, err := latestPrune(r.ctx, r.q, identity.PublicKey{}, "")
							if err != nil {
								return nil, err
							}
							if ok {
								pr = &p
							}
						}
						if pr != nil && uint64(rec) < pr.Rows {
							edge = pr.storedEdge()
						}
					}
					if h, ok := edge[x]; ok {
						out[i] = h
						continue
					}
					if edge != nil {
						return nil, fmt.Errorf("%w: entry %d (entries below the cut are deleted)", ErrPruned, rec)
					}
					return nil, &BadEntryError{Index: uint64(rec), Reason: "missing (needed for a proof)"}
				}
				return nil, fmt.Errorf("audit: read hashes of entry %d: %w", rec, err)
			}
			cache[rec] = blob
		}
		off := level * tlog.HashSize
		if len(blob) < off+tlog.HashSize {
			return nil, &BadEntryError{Index: uint64(rec), Reason: "stored tree hashes are truncated"}
		}
		copy(out[i][:], blob[off:])
	}
	return out, nil
}

// loadTree rebuilds the right edge of the tree of the first size records from
// the stored hashes (pr: the latest pruning record, or nil). Only the levels
// set in size are read: the others are overwritten before they are used.
func loadTree(ctx context.Context, q querier, size uint64, pr *PruneRecord) (tree, error) {
	t := tree{size: size}
	r := dbHashes{ctx: ctx, q: q, pr: pr}
	for l := 0; l < 63 && size>>l != 0; l++ {
		if size>>l&1 == 0 {
			continue
		}
		// The latest completed level-l node is node (size>>l)-1.
		hs, err := r.ReadHashes([]int64{tlog.StoredHashIndex(l, int64(size>>l)-1)})
		if err != nil {
			return tree{}, err
		}
		t.edge[l] = hs[0]
	}
	return t, nil
}
