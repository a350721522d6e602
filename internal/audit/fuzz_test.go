package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// fuzzPeer is the peer whose notes the fuzz targets parse.
func fuzzPeer(t testing.TB) (identity.PrivateKey, *noteSigner) {
	k := testKey(t, 2)
	s, err := newNoteSigner(OriginFor(k.Public()), k)
	if err != nil {
		t.Fatal(err)
	}
	return k, s
}

// signText signs arbitrary text as the fuzz peer, when the note format allows.
func signText(s *noteSigner, text []byte) ([]byte, bool) {
	msg, err := note.Sign(&note.Note{Text: string(text)}, s)
	return msg, err == nil
}

// checkpointSeeds are the edge cases for both fuzz targets, as checkpoint
// text (signed by the fuzz peer before use).
func checkpointSeeds(origin string) []string {
	root := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" // SHA-256("")
	return []string{
		origin + "\n0\n" + root + "\n",                                  // the empty log
		origin + "\n10\n" + root + "\n",                                 // plain
		origin + "\n10\n" + root + "\nextension line\n",                 // C2SP extension lines are allowed
		origin + "\n010\n" + root + "\n",                                // leading zero
		origin + "\n-1\n" + root + "\n",                                 // negative
		origin + "\n+1\n" + root + "\n",                                 // sign
		origin + "\n9223372036854775807\n" + root + "\n",                // largest provable size
		origin + "\n9223372036854775808\n" + root + "\n",                // beyond int64
		origin + "\n18446744073709551616\n" + root + "\n",               // beyond uint64
		origin + "\n10\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n", // non-canonical base64 (trailing bits)
		origin + "\n10\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuA==\n", // 31-byte root
		origin + "\n10\n" + strings.TrimRight(root, "=") + "\n",         // unpadded
		origin + "\n10\n" + root,                                        // no final newline
		origin + "\n10\n\n" + root + "\n",                               // empty line
		origin + "\n10\n",                                               // two lines
		"other/origin\n10\n" + root + "\n",                              // foreign origin
		"\n10\n" + root + "\n",                                          // empty origin
	}
}

// FuzzParseCheckpoint feeds peer-supplied bytes to OpenCheckpoint and the
// checkpoint text parser: no panic, and what is accepted re-encodes to the
// text's prefix. Signing the input as the peer reaches the parser through
// OpenCheckpoint, which must then agree with parseCheckpointText.
func FuzzParseCheckpoint(f *testing.F) {
	k, s := fuzzPeer(f)
	origin := OriginFor(k.Public())
	for _, text := range checkpointSeeds(origin) {
		f.Add([]byte(text))
		if msg, ok := signText(s, []byte(text)); ok {
			f.Add(msg)
		}
	}
	msg, _ := signText(s, []byte(checkpointSeeds(origin)[1]))
	f.Add(append(append([]byte{}, msg...), "— witness AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"...)) // extra unknown signature
	f.Add([]byte(strings.Replace(string(msg), "— ", "-- ", 1)))                                                                                            // not an em dash
	f.Add([]byte{})
	f.Add([]byte("\xff\xfe\n\n— x AAAA\n")) // invalid UTF-8
	f.Fuzz(func(t *testing.T, data []byte) {
		if cp, err := OpenCheckpoint(data, k.Public()); err == nil {
			if cp.Size > 1<<63-1 || string(cp.Note) != string(data) {
				t.Fatalf("accepted %+v", cp)
			}
			if n, err := note.Open(data, note.VerifierList(mustVerifier(t, cp.Origin, k.Public()))); err != nil ||
				!strings.HasPrefix(n.Text, checkpointText(cp.Origin, cp.Size, cp.Root)) {
				t.Fatalf("accepted a note that does not re-encode: %v", err)
			}
		} else if !errors.Is(err, ErrBadNote) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("error %v wraps neither ErrBadNote nor ErrBadSignature", err)
		}
		parsed, perr := parseCheckpointText(string(data))
		if perr == nil && !strings.HasPrefix(string(data), checkpointText(parsed.Origin, parsed.Size, parsed.Root)) {
			t.Fatalf("parsed %+v from %q", parsed, data)
		}
		signed, ok := signText(s, data)
		if !ok {
			return
		}
		cp, err := OpenCheckpoint(signed, k.Public())
		switch {
		case perr == nil && parsed.Origin == origin:
			if err != nil || cp.Size != parsed.Size || cp.Root != parsed.Root {
				t.Fatalf("signed valid text %q: %+v %v", data, cp, err)
			}
		case err == nil:
			t.Fatalf("signed invalid text %q accepted: %+v", data, cp)
		}
	})
}

func mustVerifier(t testing.TB, name string, pub identity.PublicKey) note.Verifier {
	v, err := noteVerifier(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// FuzzObserve presents a peer's witness with arbitrary checkpoint text (signed
// as the peer, so the judgement is reached) and an arbitrary consistency proof.
// The kept checkpoint must only ever move forward along a checked proof, and
// every fork must be recorded with two notes that verify.
func FuzzObserve(f *testing.F) {
	k, s := fuzzPeer(f)
	origin := OriginFor(k.Public())
	dir := f.TempDir()
	ctx := context.Background()
	peer, err := Open(ctx, Config{Path: filepath.Join(dir, "peer.db"), Identity: k, Now: newStepClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	defer peer.Close()
	var notes [][]byte
	for i := range 14 {
		if _, err := peer.Append(ctx, sampleEntry(i)); err != nil {
			f.Fatal(err)
		}
		notes = append(notes, mustCheckpoint2(f, peer).Note)
	}
	base := notes[9] // size 10: what the witness holds before each input
	text := func(n []byte) []byte { i := strings.Index(string(n), "\n\n"); return n[:i+1] }
	proofBytes := func(o, n uint64) []byte {
		p, err := peer.ConsistencyProof(ctx, o, n)
		if err != nil {
			f.Fatal(err)
		}
		var b []byte
		for _, h := range p {
			b = append(b, h[:]...)
		}
		return b
	}
	f.Add(text(notes[13]), proofBytes(10, 14))                             // honest growth
	f.Add(text(notes[9]), []byte{})                                        // same note
	f.Add(text(notes[6]), proofBytes(7, 10))                               // stale
	f.Add(text(notes[6]), []byte{0})                                       // stale, peer says beyond size
	f.Add(text(notes[13]), append(proofBytes(10, 14), 1))                  // honest proof, trailing byte
	f.Add([]byte(origin+"\n10\n"+strings.Repeat("A", 43)+"=\n"), []byte{}) // same size, other root
	f.Add([]byte(origin+"\n11\n"+strings.Repeat("A", 43)+"=\n"), proofBytes(10, 11))
	f.Add([]byte(origin+"\n3\n"+strings.Repeat("B", 43)+"=\n"), make([]byte, 64))
	for _, t := range checkpointSeeds(origin) {
		f.Add([]byte(t), []byte{})
	}

	me, err := Open(ctx, Config{Path: filepath.Join(dir, "me.db"), Identity: testKey(f, 1), Now: newStepClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	defer me.Close()
	w := me.Witness()
	baseCP, _ := OpenCheckpoint(base, k.Public())

	f.Fuzz(func(t *testing.T, txt, proof []byte) {
		// Reset the kept checkpoint to base (a write only when it moved).
		if cur, ok, err := w.Latest(ctx, k.Public()); err != nil {
			t.Fatal(err)
		} else if !ok || string(cur.Note) != string(base) {
			if err := w.keep(ctx, k.Public(), baseCP); err != nil {
				t.Fatal(err)
			}
		}
		msg, ok := signText(s, txt)
		if !ok {
			msg = txt // unsigned garbage
		}
		var hashes [][32]byte
		for b := proof; len(b) >= 32; b = b[32:] {
			hashes = append(hashes, [32]byte(b[:32]))
		}
		cons := func(context.Context, uint64, uint64) ([][32]byte, error) {
			if len(proof)%32 == 1 {
				return nil, ErrBeyondSize
			}
			return hashes, nil
		}
		err := w.Observe(ctx, k.Public(), msg, cons)
		kept, _, lerr := w.Latest(ctx, k.Public())
		if lerr != nil {
			t.Fatal(lerr)
		}
		var fe *ForkError
		switch {
		case errors.As(err, &fe):
			if string(kept.Note) != string(base) {
				t.Fatal("a fork moved the kept checkpoint")
			}
			var recorded int
			if err := me.r.db.QueryRowContext(ctx, `SELECT count(*) FROM forks WHERE old_note = ? AND new_note = ?`,
				string(fe.Old), string(fe.New)).Scan(&recorded); err != nil || recorded != 1 {
				t.Fatalf("fork recorded %d times: %v", recorded, err)
			}
			for _, n := range [][]byte{fe.Old, fe.New} {
				if _, err := OpenCheckpoint(n, k.Public()); err != nil {
					t.Fatalf("fork evidence does not verify: %v", err)
				}
			}
		case err != nil:
			if string(kept.Note) != string(base) {
				t.Fatal("a rejected note moved the kept checkpoint")
			}
		default:
			if string(kept.Note) == string(base) {
				return
			}
			// It moved: only forward, and only along a proof that checks.
			if kept.Size <= baseCP.Size {
				t.Fatalf("kept checkpoint moved from %d to %d", baseCP.Size, kept.Size)
			}
			tp := make(tlog.TreeProof, len(hashes))
			for i, h := range hashes {
				tp[i] = h
			}
			if tlog.CheckTree(tp, int64(kept.Size), kept.Root, int64(baseCP.Size), baseCP.Root) != nil {
				t.Fatalf("kept checkpoint %d without a valid proof", kept.Size)
			}
		}
	})
}

func mustCheckpoint2(t testing.TB, l *Log) Checkpoint {
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/{FuzzParseCheckpoint,FuzzObserve}
// seed files when AUDIT_WRITE_CORPUS=1; otherwise it checks they exist.
func TestWriteFuzzCorpus(t *testing.T) {
	k, s := fuzzPeer(t)
	origin := OriginFor(k.Public())
	write := os.Getenv("AUDIT_WRITE_CORPUS") == "1"
	files := map[string]string{}
	for i, text := range checkpointSeeds(origin) {
		files[fmt.Sprintf("FuzzParseCheckpoint/text-%02d", i)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", text)
		if msg, ok := signText(s, []byte(text)); ok {
			files[fmt.Sprintf("FuzzParseCheckpoint/signed-%02d", i)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", msg)
		}
		files[fmt.Sprintf("FuzzObserve/text-%02d", i)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", text, make([]byte, 64*(i%3)))
	}
	for name, body := range files {
		path := filepath.Join("testdata", "fuzz", name)
		if write {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != body {
			t.Fatalf("%s is missing or stale; run with AUDIT_WRITE_CORPUS=1", path)
		}
	}
}
