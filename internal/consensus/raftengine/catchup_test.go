package raftengine

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

func recordsReq(from, to uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, from), to)
}

// TestRecordsAnswerChecks: a member answers a records request only within
// its delivered mark, and the catching-up member refuses an answer that
// strays from the range asked, is out of order, or carries a record of
// another group, a forged request or a result that does not parse.
func TestRecordsAnswerChecks(t *testing.T) {
	tc := newCluster(t, 3)
	lead := tc.leader(30 * time.Second)
	var idx []uint64
	for k := range 3 {
		idx = append(idx, tc.propose(lead, fsm.Put(fmt.Sprintf("k%d", k), []byte("v"))).Index)
	}
	from, to := idx[0], idx[2]
	tc.settle(lead, to) // the mark follows the applied entries in the background
	e := tc.engine(lead)
	ctx := context.Background()

	for name, body := range map[string][]byte{
		"short request":   []byte("0123456789abcde"),
		"index 0":         recordsReq(0, to),
		"to below from":   recordsReq(to, from),
		"beyond the mark": recordsReq(to+100, to+200),
	} {
		if status, _ := e.serveRecords(ctx, body); status != statusRefused {
			t.Errorf("%s: status %d, want refused", name, status)
		}
	}
	status, good := e.serveRecords(ctx, recordsReq(from, to+50))
	if status != statusOK {
		t.Fatalf("good request: status %d: %s", status, good)
	}
	through, recs, err := e.checkAnswer(from, to+50, good)
	if err != nil || through < to || len(recs) != 3 {
		t.Fatalf("good answer: through %d, %d records, %v", through, len(recs), err)
	}

	answer := func(through uint64, rs ...storedRecord) []byte {
		b := binary.BigEndian.AppendUint64(nil, through)
		for _, r := range rs {
			b = appendRecord(b, r)
		}
		return b
	}
	other, _ := fsm.NewGroup("other", fsm.ModeRaft, 0, tc.g.Members)
	foreign := recs[0]
	foreign.group = other.Canonical()
	forged := recs[0]
	forged.req = append([]byte{}, forged.req...)
	forged.req[len(forged.req)-1] ^= 1 // the signature's last byte
	badResult := recs[0]
	badResult.res = []byte("{")
	for name, body := range map[string][]byte{
		"empty":                 nil,
		"through below from":    answer(from-1, recs...),
		"through beyond to":     answer(to+51, recs...),
		"record beyond through": answer(from, recs...),
		"out of order":          answer(to, recs[1], recs[0]),
		"another group":         answer(to, foreign),
		"forged request":        answer(to, forged),
		"result not JSON":       answer(to, badResult),
		"truncated":             good[:len(good)-3],
	} {
		if _, _, err := e.checkAnswer(from, to+50, body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
