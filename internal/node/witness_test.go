package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/trust"
)

// proofAnswer tells a peer that answered without a proof (evidence) from one
// that could not be asked (no judgement).
func TestProofAnswerClassifies(t *testing.T) {
	good := consistencyReply{Proof: []string{strings.Repeat("ab", 32)}}
	remote := func(stage refusal.Stage, reason string) error {
		return &refusal.Error{Stage: stage, Reason: reason, Remote: true, Err: errors.New(reason)}
	}
	for _, tc := range []struct {
		name string
		out  consistencyReply
		err  error
		want error // nil: a proof
	}{
		{"proof", good, nil, nil},
		{"beyond size", consistencyReply{}, remote(refusal.StageAudit, reasonBeyondSize), audit.ErrBeyondSize},
		{"refused at its audit stage", consistencyReply{}, remote(refusal.StageAudit, "internal"), audit.ErrProofRefused},
		{"not json", consistencyReply{}, fmt.Errorf("%w: unexpected end of JSON input", errMalformedAnswer), audit.ErrMalformedProof},
		{"not hex", consistencyReply{Proof: []string{"zz"}}, nil, audit.ErrMalformedProof},
		{"short hash", consistencyReply{Proof: []string{"abcd"}}, nil, audit.ErrMalformedProof},
		{"too many hashes", consistencyReply{Proof: make([]string, maxProofHashes+1)}, nil, audit.ErrMalformedProof},
		{"pruned", consistencyReply{Proof: good.Proof, Pruned: "record"}, nil, audit.ErrPruned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := proofAnswer(tc.out, tc.err)
			if tc.want == nil {
				if err != nil || len(p) != 1 || hex.EncodeToString(p[0][:]) != good.Proof[0] {
					t.Fatalf("%v %v", p, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Not reachable, or refused before its audit stage: no judgement.
	for _, err := range []error{
		errors.New("dial tcp 127.0.0.1:1: connection refused"),
		context.DeadlineExceeded,
		&refusal.Error{Stage: refusal.StageTransport, Reason: "handshake"},
		remote(refusal.StageTrust, "quarantined"),
	} {
		_, got := proofAnswer(consistencyReply{}, err)
		if errors.Is(got, audit.ErrProofRefused) || errors.Is(got, audit.ErrMalformedProof) || errors.Is(got, audit.ErrBeyondSize) {
			t.Fatalf("%v judged as %v", err, got)
		}
	}
}

// Over the wire: the callee prunes past the size the caller kept for it; the
// callee's pruning record and a proof from its cut let the caller witness on,
// with an audit.gap entry for the interval it missed.
func TestWitnessAcrossPeersPruning(t *testing.T) {
	caller, callee := pairNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := caller.audit.Witness()
	kept := func(size uint64) audit.Checkpoint { return keptOf(t, ctx, caller, callee, size) }
	first := kept(1)
	// At least one entry the caller has not seen goes below the cut.
	if _, err := callee.audit.Append(ctx, audit.Entry{Kind: audit.KindPolicyChanged, Outcome: "changed", Stage: "policy"}); err != nil {
		t.Fatal(err)
	}
	cut, err := callee.audit.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := callee.audit.PruneRows(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := callee.audit.ConsistencyProof(ctx, first.Size, cut.Size+1); !errors.Is(err, audit.ErrPruned) {
		t.Fatalf("callee proof from %d: %v, want ErrPruned", first.Size, err)
	}
	after := kept(cut.Size + 2)
	es, err := caller.audit.List(ctx, audit.Filter{Kind: audit.KindGap})
	if err != nil || len(es) != 1 || es[0].Peer != callee.ID().String() {
		t.Fatalf("gap entries %v %v (kept %d, then %d)", es, err, first.Size, after.Size)
	}
	if fs, _ := w.Forks(ctx, callee.ID()); len(fs) != 0 {
		t.Fatalf("an honest pruning was judged a fork: %+v", fs)
	}
}

// keptOf makes calls from caller to callee until caller's witness keeps a
// checkpoint of callee of at least size.
func keptOf(t *testing.T, ctx context.Context, caller, callee *Node, size uint64) audit.Checkpoint {
	t.Helper()
	for {
		if _, err := caller.Call(ctx, "callee", "echo", []byte(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
		if cp, ok, err := caller.audit.Witness().Latest(ctx, callee.ID()); err != nil {
			t.Fatal(err)
		} else if ok && cp.Size >= size {
			return cp
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the caller kept no checkpoint of size %d", size)
		case <-time.After(20 * time.Millisecond): // calls pace the poll; the witness judges at most once a second
		}
	}
}

// A peer whose newer checkpoints keep arriving while it cannot be asked for
// proofs is named once a streak: an alert and failure trust evidence, and no
// fork.
func TestWitnessNamesAPeerThatGivesNoProofs(t *testing.T) {
	caller, callee := pairNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keptOf(t, ctx, caller, callee, 1)
	if _, err := callee.audit.Append(ctx, audit.Entry{Kind: audit.KindPolicyChanged, Outcome: "changed", Stage: "policy"}); err != nil {
		t.Fatal(err)
	}
	newer, err := callee.audit.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	callee.Close() // unreachable from now on
	failures := func() int {
		n := 0
		for _, e := range caller.trust.Get(callee.ID().String(), time.Now()).Recent {
			if e.Kind == trust.KindFailure && strings.Contains(e.Detail, "no consistency proof") {
				n++
			}
		}
		return n
	}
	// The witness loop may judge one more (the last call's note, still
	// pending when the callee closed): the alert comes at our 9th or 10th.
	const streak = 10 // audit's maxUnwitnessed
	for i := 1; i <= streak+3; i++ {
		caller.judge(ctx, witnessed{callee.ID(), newer.Note})
		want := 0
		if i >= streak {
			want = 1
		}
		if got := failures(); got != want && !(i == streak-1 && got == 1) {
			t.Fatalf("after %d unjudged checkpoints: %d failure evidence, want %d (once a streak)", i, got, want)
		}
	}
	if fs, _ := caller.audit.Witness().Forks(ctx, callee.ID()); len(fs) != 0 {
		t.Fatalf("an unreachable peer was judged: %+v", fs)
	}
}

// FuzzConsistencyReply reads a peer's answer to a consistency request as
// askAudit and proofAnswer do: never a panic, and a proof or a pruned answer
// only when every hash is 32 bytes of hex and there are at most 128.
func FuzzConsistencyReply(f *testing.F) {
	f.Add([]byte(`{"proof":["` + strings.Repeat("ab", 32) + `"]}`))
	f.Add([]byte(`{"proof":[],"pruned":"origin\nprune 1\n"}`))
	f.Add([]byte(`{"proof":["zz"]}`))
	f.Add([]byte(`{"proof":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var out consistencyReply
		var err error
		if jerr := json.Unmarshal(body, &out); jerr != nil {
			err = fmt.Errorf("%w: %v", errMalformedAnswer, jerr)
		}
		p, err := proofAnswer(out, err)
		var pe *audit.PrunedError
		switch {
		case errors.As(err, &pe):
			p = pe.Proof
		case err != nil:
			if !errors.Is(err, audit.ErrMalformedProof) {
				t.Fatalf("a reply read as %v", err)
			}
			return
		}
		if len(p) != len(out.Proof) || len(p) > maxProofHashes {
			t.Fatalf("%d hashes from %d", len(p), len(out.Proof))
		}
	})
}
