package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestConfigValidation(t *testing.T) {
	key := testKey(t, 1)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, field string
		cfg         Config
	}{
		{"no path", "Config.Path", Config{Identity: key}},
		{"no key", "Config.Identity", Config{Path: dir + "/a.db"}},
		{"origin with space", "Config.Origin", Config{Path: dir + "/a.db", Identity: key, Origin: "a b"}},
		{"origin with plus", "Config.Origin", Config{Path: dir + "/a.db", Identity: key, Origin: "a+b"}},
		{"every", "Config.CheckpointEvery", Config{Path: dir + "/a.db", Identity: key, CheckpointEvery: -1}},
		{"interval", "Config.CheckpointInterval", Config{Path: dir + "/a.db", Identity: key, CheckpointInterval: time.Microsecond}},
		{"batch", "Config.MaxBatch", Config{Path: dir + "/a.db", Identity: key, MaxBatch: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

func TestAppendGetList(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), nil)
	ctx := t.Context()
	appendN(t, l, 0, 20)
	for i := range 20 {
		got, err := l.Get(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		want := sampleEntry(i)
		if got.Index != uint64(i) || got.Kind != want.Kind || got.Peer != want.Peer || got.Capability != want.Capability ||
			!bytes.Equal(got.Content, want.Content) || !bytes.Equal(got.RequestDigest, want.RequestDigest) {
			t.Fatalf("entry %d: got %+v", i, got)
		}
		if want.Content != nil {
			sum := sha256.Sum256(want.Content)
			if !bytes.Equal(got.ContentDigest, sum[:]) {
				t.Fatalf("entry %d: content digest not computed", i)
			}
		} else if !bytes.Equal(got.ContentDigest, want.ContentDigest) {
			t.Fatalf("entry %d: digest-only entry lost its digest", i)
		}
		var rep, wantRep any
		json.Unmarshal(got.Report, &rep)
		json.Unmarshal(want.Report, &wantRep)
		if fmt.Sprint(rep) != fmt.Sprint(wantRep) {
			t.Fatalf("entry %d: report %s", i, got.Report)
		}
		if got.Time.IsZero() || (i > 0 && got.Time.Before(mustGet(t, l, i-1).Time)) {
			t.Fatalf("entry %d: time %v", i, got.Time)
		}
	}
	if _, err := l.Get(ctx, 20); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get beyond end: %v", err)
	}
	third := mustGet(t, l, 10).Time
	for _, tc := range []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"peer", Filter{Peer: "did:key:z6MkPeer1"}, []uint64{1, 4, 7, 10, 13, 16, 19}},
		{"kind", Filter{Kind: KindCallRefused}, []uint64{3, 7, 11, 15, 19}},
		{"peer and kind", Filter{Peer: "did:key:z6MkPeer1", Kind: KindCallServed}, []uint64{1, 13}},
		{"since", Filter{Since: third, Limit: 3}, []uint64{10, 11, 12}},
		{"reverse limit", Filter{Reverse: true, Limit: 2}, []uint64{19, 18}},
		{"none", Filter{Kind: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := l.List(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, e := range es {
				got = append(got, e.Index)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
}

func mustGet(t testing.TB, l *Log, i int) Entry {
	t.Helper()
	e, err := l.Get(t.Context(), uint64(i))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAppendRejectsInvalid(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), nil)
	if _, err := l.Append(t.Context(), Entry{}); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("got %v", err)
	}
	// A refused entry takes no index.
	if idx, err := l.Append(t.Context(), sampleEntry(0)); err != nil || idx != 0 {
		t.Fatalf("got %d %v", idx, err)
	}
}

// TestCheckpointFormat checks the C2SP tlog-checkpoint body and that the note
// verifies with the standard verifier for the node's key.
func TestCheckpointFormat(t *testing.T) {
	key := testKey(t, 1)
	l, _ := openTest(t, key, nil)
	appendN(t, l, 0, 5)
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	origin := "treaty/" + key.Public().String()
	vkey, err := note.NewEd25519VerifierKey(origin, key.Public().Ed25519())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp.Note, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note does not verify: %v\n%s", err, cp.Note)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" || lines[0] != origin || lines[1] != "5" {
		t.Fatalf("checkpoint text %q", n.Text)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || !bytes.Equal(root, cp.Root[:]) || cp.Size != 5 {
		t.Fatalf("root line %q, cp %+v", lines[2], cp)
	}
	// The root is the RFC 6962 root of the five leaves, computed independently.
	var leaves [][]byte
	for i := range 5 {
		p, _ := l.Prove(t.Context(), uint64(i))
		leaves = append(leaves, p.Leaf)
	}
	if want := rfcRoot(leaves); !bytes.Equal(want[:], root) {
		t.Fatalf("root %x, independent %x", root, want)
	}
	// Another key's verifier rejects it.
	other := testKey(t, 2)
	if _, err := OpenCheckpoint(cp.Note, other.Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
	if got, err := OpenCheckpoint(cp.Note, key.Public()); err != nil || got.Size != 5 || got.Root != cp.Root {
		t.Fatalf("OpenCheckpoint: %+v %v", got, err)
	}
}

// TestProveJSONShape pins the `treaty audit prove --json` contract.
func TestProveJSONShape(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), nil)
	appendN(t, l, 0, 6)
	p, err := l.Prove(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	tok, _ := dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	_ = tok
	if strings.Join(keys, ",") != "index,size,leaf,proof,root,checkpoint" {
		t.Fatalf("keys %v in %s", keys, b)
	}
	var m struct {
		Index, Size       uint64
		Leaf, Root, Check string
		Checkpoint        string
		Proof             []string
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	leaf, _ := base64.StdEncoding.DecodeString(m.Leaf)
	if m.Index != 2 || m.Size != 6 || !bytes.HasPrefix(leaf, []byte(`{"v":2,"index":2,`)) || len(m.Root) != 64 ||
		!strings.HasPrefix(m.Checkpoint, "treaty/did:key:") || len(m.Proof) != 3 {
		t.Fatalf("proof %s", b)
	}
	var back Proof
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := VerifyProof(back, testKey(t, 1).Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prove(t.Context(), 6); !errors.Is(err, ErrBeyondSize) {
		t.Fatalf("prove beyond: %v", err)
	}
}

// TestConcurrentAppends: 64 goroutines; every Append returns a unique index,
// the indices are dense, each entry holds what its caller appended, and the
// log verifies.
func TestConcurrentAppends(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	const workers, each = 64, 25
	var mu sync.Mutex
	got := map[uint64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := sampleEntry(i)
				e.Capability = fmt.Sprintf("w%d-%d", w, i)
				idx, err := l.Append(t.Context(), e)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if prev, dup := got[idx]; dup {
					errs <- fmt.Errorf("index %d given to %s and %s", idx, prev, e.Capability)
				}
				got[idx] = e.Capability
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != workers*each {
		t.Fatalf("%d indices", len(got))
	}
	// Group commit: 64 concurrent callers share transactions.
	if st := l.Stats(); st.Entries != workers*each || st.Commits >= st.Entries {
		t.Fatalf("stats %+v: no batching", st)
	}
	for i := range uint64(workers * each) {
		cap, ok := got[i]
		if !ok {
			t.Fatalf("index %d never returned", i)
		}
		if e := mustGet(t, l, int(i)); e.Capability != cap {
			t.Fatalf("entry %d holds %q, appender had %q", i, e.Capability, cap)
		}
	}
	res, err := Verify(t.Context(), path, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != workers*each {
		t.Fatalf("verify %v", res)
	}
	cp, _ := l.Checkpoint(t.Context())
	if res.Root != cp.Root || res.String() != "ok "+strconv.Itoa(workers*each)+" entries root "+fmt.Sprintf("%x", cp.Root) {
		t.Fatalf("verify %q, checkpoint %x", res, cp.Root)
	}
}

func TestReopenResumes(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	appendN(t, l, 0, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(t.Context(), sampleEntry(10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	l2, err := Open(t.Context(), Config{Path: path, Identity: key, Now: newStepClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	appendN(t, l2, 10, 5)
	if res, err := Verify(t.Context(), path, key.Public()); err != nil || res.Entries != 15 {
		t.Fatalf("%v %v", res, err)
	}
	// Another key cannot take over the log.
	if _, err := Open(t.Context(), Config{Path: path, Identity: testKey(t, 2)}); err == nil {
		t.Fatal("opened with another identity")
	}
	// Verify with another key fails.
	if _, err := Verify(t.Context(), path, testKey(t, 2).Public()); err == nil {
		t.Fatal("verified with another key")
	}
}

// TestCheckpointRetention: CheckpointEvery decides how many checkpoints stay.
func TestCheckpointRetention(t *testing.T) {
	for _, tc := range []struct{ every, want int }{{4, 1 + 40/4}, {16, 1 + 2 + 1}} {
		t.Run(strconv.Itoa(tc.every), func(t *testing.T) {
			key := testKey(t, 1)
			l, path := openTest(t, key, func(c *Config) { c.CheckpointEvery = tc.every; c.CheckpointInterval = time.Hour })
			appendN(t, l, 0, 40)
			res, err := Verify(t.Context(), path, key.Public())
			if err != nil {
				t.Fatal(err)
			}
			// size 0, every multiple crossed, and the head (40 is a multiple of 4).
			if res.Checkpoints != tc.want {
				t.Fatalf("%d checkpoints kept, want %d", res.Checkpoints, tc.want)
			}
		})
	}
}

func TestVerifyWhileAppending(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	appendN(t, l, 0, 50)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 50; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if _, err := l.Append(t.Context(), sampleEntry(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 10 {
		res, err := Verify(t.Context(), path, key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if res.Entries < 50 {
			t.Fatalf("%v", res)
		}
	}
	close(done)
	wg.Wait()
}

func TestReaderWhileOpen(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	appendN(t, l, 0, 7)
	r, err := OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Key() != key.Public() {
		t.Fatal("reader key")
	}
	if e, err := r.Get(t.Context(), 3); err != nil || e.Capability != sampleEntry(3).Capability {
		t.Fatalf("%+v %v", e, err)
	}
	if es, err := r.List(t.Context(), Filter{Kind: KindCallSent}); err != nil || len(es) != 2 {
		t.Fatalf("%v %v", es, err)
	}
	p, err := r.Prove(t.Context(), 6)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyProof(p, key.Public()); err != nil {
		t.Fatal(err)
	}
	cp, err := r.Checkpoint(t.Context())
	if err != nil || cp.Size != 7 || cp.Root != mustCheckpoint(t, l).Root {
		t.Fatalf("%+v %v", cp, err)
	}
	// A proof from the log's own ConsistencyProof checks with tlog.
	old := cp
	appendN(t, l, 7, 5)
	hs, err := r.ConsistencyProof(t.Context(), old.Size, 12)
	if err != nil {
		t.Fatal(err)
	}
	if !consistent(hs, old, mustCheckpoint(t, l)) {
		t.Fatal("consistency proof does not check")
	}
	if _, err := r.ConsistencyProof(t.Context(), 3, 13); !errors.Is(err, ErrBeyondSize) {
		t.Fatalf("beyond: %v", err)
	}
}

func TestVerifyMissingFile(t *testing.T) {
	path := t.TempDir() + "/nope.db"
	if _, err := Verify(t.Context(), path, testKey(t, 1).Public()); err == nil {
		t.Fatal("verified a missing file")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Verify created %s: %v", path, err)
	}
	if _, err := Verify(t.Context(), path, identity.PublicKey{}); err == nil {
		t.Fatal("verified without a key")
	}
}

// TestReceiptProof: the checkpoint AppendCheckpoint returns covers the entry,
// and ProveAt proves the entry in it after the log has grown.
func TestReceiptProof(t *testing.T) {
	key := testKey(t, 1)
	l, _ := openTest(t, key, nil)
	appendN(t, l, 0, 3)
	idx, cp, err := l.AppendCheckpoint(t.Context(), sampleEntry(3))
	if err != nil {
		t.Fatal(err)
	}
	if idx != 3 || cp.Size <= idx {
		t.Fatalf("index %d checkpoint %d", idx, cp.Size)
	}
	appendN(t, l, 4, 10)
	p, err := l.ProveAt(t.Context(), idx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if p.Size != cp.Size || string(p.Checkpoint) != string(cp.Note) {
		t.Fatalf("proof against %d", p.Size)
	}
	js := mustJSON(t, p)
	if !checkExportedProof(t, js, OriginFor(key.Public()), key.Public().Ed25519()) {
		t.Fatal("receipt proof rejected by the independent verifier")
	}
	// A checkpoint from another log is refused.
	other, _ := openTest(t, testKey(t, 2), nil)
	appendN(t, other, 0, 5)
	if _, err := l.ProveAt(t.Context(), 1, mustCheckpoint(t, other)); err == nil {
		t.Fatal("proved against a foreign checkpoint")
	}
}
