package fsm

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
	"pgregory.net/rapid"
)

// TestReplicasAgree applies one random log of valid and invalid requests
// (forged, replayed, wrong group, malformed, stale epoch) to three replicas,
// one of which is rebuilt from a snapshot halfway, and checks that their
// digests and results stay identical and that no forged or replayed request
// is ever applied.
func TestReplicasAgree(t *testing.T) {
	ks := keys(t, 5)
	outsider := key(t, 200)
	rapid.Check(t, func(rt *rapid.T) {
		mode := rapid.SampledFrom([]Mode{ModeRaft, ModeBFT}).Draw(rt, "mode")
		g, err := NewGroup("prop", mode, 0, pubs(ks[:4]))
		if err != nil {
			rt.Fatal(err)
		}
		var reps [3]*Machine
		for i := range reps {
			if reps[i], err = New(g); err != nil {
				rt.Fatal(err)
			}
		}
		seq := map[int]uint64{}
		var sent [][]byte            // every genuine request made so far
		applied := map[string]bool{} // bodies of applied requests
		forged := map[string]bool{}  // wire forms of forged requests
		var now int64 = 1000
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		restoreAt := rapid.IntRange(0, steps).Draw(rt, "restoreAt")
		for step := 1; step <= steps; step++ {
			if step == restoreAt {
				r, err := Restore(reps[2].Snapshot())
				if err != nil {
					rt.Fatalf("restore: %v", err)
				}
				reps[2] = r
			}
			cur := reps[0].Group()
			who := rapid.IntRange(0, len(ks)-1).Draw(rt, "who")
			op := drawOp(rt, ks, reps[0])
			var req []byte
			switch kind := rapid.IntRange(0, 9).Draw(rt, "kind"); {
			case kind <= 4: // genuine
				seq[who]++
				req = signed(rt, ks[who], cur.ID(), seq[who], op)
				sent = append(sent, req)
			case kind == 5 && len(sent) > 0: // replay of an earlier request
				req = sent[rapid.IntRange(0, len(sent)-1).Draw(rt, "replay")]
			case kind == 6: // forged: another member's key, the signer's signature
				victim := (who + 1) % len(ks)
				q, err := SignRequest(ks[victim], cur.ID(), seq[victim]+1, op)
				if err != nil {
					rt.Fatal(err)
				}
				req = q.Encode()
				copy(req[len(req)-64:], ks[who].Sign(q.Body()))
				forged[string(req)] = true
			case kind == 7: // wrong group or a non-member
				if rapid.Bool().Draw(rt, "outsider") {
					req = signed(rt, outsider, cur.ID(), 1, op)
				} else {
					other := cur
					other.Name = "other"
					req = signed(rt, ks[who], other.ID(), seq[who]+1, op)
				}
			case kind == 8: // malformed
				req = rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(rt, "junk")
			default: // a tick
			}
			now += rapid.Int64Range(-50, 400).Draw(rt, "dt")
			e := Entry{Time: now, Request: req}
			idx := uint64(step)
			var res [3]Result
			for i, m := range reps {
				res[i] = m.Apply(idx, e)
			}
			for i := 1; i < 3; i++ {
				if res[i].Digest() != res[0].Digest() || reps[i].Digest() != reps[0].Digest() {
					rt.Fatalf("step %d: replica %d diverged: %+v vs %+v", step, i, res[i], res[0])
				}
			}
			if len(req) > 0 && res[0].Code != CodeMalformed {
				q, err := DecodeRequest(req)
				if err != nil {
					rt.Fatalf("decoded by apply, not by DecodeRequest: %v", err)
				}
				body := string(q.Body())
				authenticated := res[0].Code != CodeWrongGroup && res[0].Code != CodeNotMember &&
					res[0].Code != CodeBadSignature && res[0].Code != CodeReplay
				if authenticated && forged[string(req)] {
					rt.Fatalf("step %d: forged request accepted: %+v", step, res[0])
				}
				if authenticated && applied[body] {
					rt.Fatalf("step %d: replayed request accepted: %+v", step, res[0])
				}
				if authenticated {
					applied[body] = true
				}
			}
		}
		// A fresh replica fed the snapshot of another equals it byte for byte.
		r, err := Restore(reps[1].Snapshot())
		if err != nil || !bytes.Equal(r.Snapshot(), reps[0].Snapshot()) {
			rt.Fatalf("final restore: %v", err)
		}
	})
}

// drawOp draws an operation that often touches existing keys and motions.
func drawOp(rt *rapid.T, ks []identity.PrivateKey, m *Machine) Op {
	key := fmt.Sprintf("k%d", rapid.IntRange(0, 3).Draw(rt, "key"))
	switch rapid.IntRange(0, 6).Draw(rt, "op") {
	case 0:
		return Put(key, []byte(rapid.StringN(0, 8, 8).Draw(rt, "value")))
	case 1:
		it, _ := m.Get(key)
		v := it.Version
		if rapid.Bool().Draw(rt, "staleCAS") {
			v += uint64(rapid.IntRange(1, 2).Draw(rt, "off"))
		}
		return CAS(key, []byte("c"), v)
	case 2:
		return Delete(key)
	case 3:
		var deadline int64
		if rapid.Bool().Draw(rt, "hasDeadline") {
			deadline = m.Clock() + rapid.Int64Range(1, 2000).Draw(rt, "deadline")
		}
		name := fmt.Sprintf("m%d", rapid.IntRange(0, 4).Draw(rt, "name"))
		return OpenMotion(name, uint32(rapid.IntRange(0, 5).Draw(rt, "quorum")), deadline, "m")
	case 4, 5:
		// A member's motion, or a membership motion opened recently.
		name := fmt.Sprintf("m%d", rapid.IntRange(0, 4).Draw(rt, "name"))
		if rapid.Bool().Draw(rt, "membership") {
			name = fmt.Sprintf("#%d", m.LastIndex()-uint64(rapid.IntRange(0, 10).Draw(rt, "back")))
		}
		return Vote(name, rapid.Bool().Draw(rt, "yes"))
	default:
		k := ks[rapid.IntRange(0, len(ks)-1).Draw(rt, "member")].Public()
		if rapid.Bool().Draw(rt, "add") {
			return AddMember(k, 0, "")
		}
		return RemoveMember(k, 0, "")
	}
}
