package audit

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseLeaf: leaves come from peers' proofs. Never a panic; an accepted
// leaf is canonical (ParseLeaf re-encodes it) and content_kept implies a digest.
// Verify's shortcut to the kind and peer (leafKindPeer, for the index columns)
// never panics either, and agrees with ParseLeaf on every leaf it accepts.
func FuzzParseLeaf(f *testing.F) {
	for i := range 6 {
		p, _ := prepare(sampleEntry(i))
		f.Add(leafBytes(nil, uint64(i), "2025-11-28T09:00:00.000000000Z", p.body))
		p1, _ := prepareLeaf(sampleEntry(i), 1, false)
		f.Add(leafBytesV(nil, leafV1Prefix, uint64(i), "2025-11-28T09:00:00.000000000Z", p1.body))
	}
	f.Add([]byte(`{"v":2,"index":0,"time":"2025-11-28T09:00:00.000000000Z","content_digest":"","content_kept":true,"kind":"x","peer":"","direction":"","capability":"","outcome":"","stage":"","request_digest":"","response_digest":"","report":null,"evidence":null}`))
	odd := sampleEntry(7)
	odd.Kind, odd.Peer = "k\"ind\t", "did:key:z6Mk\"é\\\n\x01𝄞xyz"
	p, _ := prepare(odd)
	f.Add(leafBytes(nil, 7, "2025-11-28T09:00:00.000000000Z", p.body))
	f.Fuzz(func(t *testing.T, leaf []byte) {
		kind, peer, kpOK := leafKindPeer(leaf)
		checkIndexColumns(leaf, peer, kind)
		e, err := ParseLeaf(leaf)
		if err != nil {
			return
		}
		if !kpOK || string(kind) != e.Kind || string(peer) != e.Peer {
			t.Fatalf("leafKindPeer gave %q, %q (%v); ParseLeaf %q, %q", kind, peer, kpOK, e.Kind, e.Peer)
		}
		if e.ContentKept && len(e.ContentDigest) != 32 {
			t.Fatalf("content_kept without a digest: %s", leaf)
		}
		v, prefix := 1, leafV1Prefix
		if bytes.HasPrefix(leaf, []byte(`{"v":2`)) {
			v, prefix = 2, leafVersionPrefix
		}
		p, err := prepareLeaf(e, v, e.ContentKept)
		if err != nil || !bytes.Equal(leafBytesV(nil, prefix, e.Index, e.Time.UTC().Format(timeLayout), p.body), leaf) {
			t.Fatalf("accepted a leaf that does not re-encode: %s", leaf)
		}
	})
}

// FuzzParsePruneText: records are read from audit.db, which an attacker with
// file access may edit. Never a panic; an accepted record re-encodes exactly.
func FuzzParsePruneText(f *testing.F) {
	rec := PruneRecord{Seq: 3, Rows: 5, Content: 9, Root: emptyRoot}
	tr := tree{}
	for i := range 5 {
		tr.add(newLeafHasher().sum([]byte{byte(i)}), nil)
	}
	rec.Root = tr.root()
	rec.Edge = append(rec.Edge, tr.edge[2], tr.edge[0])
	f.Add(rec.text("treaty/did:key:z6Mkx"))
	f.Add("o\nprune 1\ntime 2025-11-28T09:00:00.000000000Z\nrows 0\ncontent 4\nroot 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
	f.Add("o\nprune 1\ntime x\nrows 1\ncontent 0\nroot A\nedge B\n")
	f.Fuzz(func(t *testing.T, text string) {
		r, err := parsePruneText(text)
		if err != nil {
			return
		}
		origin, _, _ := strings.Cut(text, "\n")
		if got := r.text(origin); got != text {
			t.Fatalf("accepted a record that does not re-encode:\n%q\n%q", text, got)
		}
	})
}
