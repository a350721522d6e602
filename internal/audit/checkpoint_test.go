package audit

import (
	"errors"
	"testing"
)

func TestParseCheckpointText(t *testing.T) {
	seeds := checkpointSeeds("treaty/x")
	// Which of checkpointSeeds parse; see the comments there.
	valid := map[int]bool{0: true, 1: true, 2: true, 6: true, 15: true}
	for i, text := range seeds {
		_, err := parseCheckpointText(text)
		if valid[i] != (err == nil) {
			t.Errorf("seed %d %q: err %v, want valid=%v", i, text, err, valid[i])
		}
		if err != nil && !errors.Is(err, ErrBadNote) {
			t.Errorf("seed %d: %v does not wrap ErrBadNote", i, err)
		}
	}
	cp, err := parseCheckpointText(seeds[6])
	if err != nil || cp.Size != 1<<63-1 || cp.Origin != "treaty/x" || cp.Root != emptyRoot {
		t.Fatalf("%+v %v", cp, err)
	}
}

func TestVerifyProofRejects(t *testing.T) {
	key := testKey(t, 1)
	l, _ := openTest(t, key, nil)
	appendN(t, l, 0, 9)
	good, err := l.Prove(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := l.Prove(t.Context(), 5)
	for _, tc := range []struct {
		name     string
		mod      func(p *Proof)
		otherKey bool
	}{
		{"wrong key", func(p *Proof) {}, true},
		{"another entry's leaf", func(p *Proof) { p.Leaf = other.Leaf }, false},
		{"another entry's index", func(p *Proof) { p.Index = 5 }, false},
		{"root not the checkpoint's", func(p *Proof) { p.Root[0] ^= 1 }, false},
		{"size not the checkpoint's", func(p *Proof) { p.Size = 8 }, false},
		{"path hash flipped", func(p *Proof) { p.Hashes[1][31] ^= 1 }, false},
		{"path truncated", func(p *Proof) { p.Hashes = p.Hashes[:len(p.Hashes)-1] }, false},
		{"index beyond size", func(p *Proof) { p.Index = 9 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			p.Hashes = append([][32]byte(nil), good.Hashes...)
			tc.mod(&p)
			pub := key.Public()
			if tc.otherKey {
				pub = testKey(t, 2).Public()
			}
			if err := VerifyProof(p, pub); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := VerifyProof(good, key.Public()); err != nil {
		t.Fatal(err)
	}
	// A node has exactly one log its peers witness, the one under
	// OriginFor(key): a proof from a side log the same key signs under another
	// origin proves nothing about it.
	side, _ := openTest(t, key, func(c *Config) { c.Origin = "treaty/side-log" })
	appendN(t, side, 0, 9)
	sp, err := side.Prove(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyProof(sp, key.Public()); !errors.Is(err, ErrBadNote) {
		t.Fatalf("proof from a log under another origin: %v, want ErrBadNote", err)
	}
}

func TestOpenRejectsOtherOrigin(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	l.Close()
	if _, err := Open(t.Context(), Config{Path: path, Identity: key, Origin: "other/origin"}); err == nil {
		t.Fatal("reopened under another origin")
	}
}
