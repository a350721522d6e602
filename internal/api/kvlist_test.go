package api

import (
	"encoding/json"
	"testing"
)

// The kv ls answer says whether it was cut at its limit, and which limit:
// a client cannot tell a cut list from a whole one by its length alone.
func TestKVListAnswerSaysWhenCut(t *testing.T) {
	for _, c := range []struct {
		keys      []string
		truncated bool
		want      string
	}{
		{nil, false, `{"keys":[],"truncated":false,"limit":10000}`},
		{[]string{"a"}, true, `{"keys":["a"],"truncated":true,"limit":10000}`},
	} {
		b, err := json.Marshal(kvListAnswer(c.keys, c.truncated))
		if err != nil || string(b) != c.want {
			t.Errorf("answer %s (%v), want %s", b, err, c.want)
		}
	}
}
