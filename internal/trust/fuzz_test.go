package trust

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeFile: the state file is ours, but a damaged or hand-edited file must be
// refused with an error, never crash the node, and whatever loads must survive a
// write and a reload unchanged.
func FuzzDecodeFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"peers":{}}`))                                                                                              // empty book
	f.Add([]byte(`{"version":1,"peers":{"p":{"good":3,"bad":1,"updated":"2025-01-01T00:00:00Z","natural":"trusted"}}}`))                   // one peer
	f.Add([]byte(`{"version":1,"peers":{"p":{"quarantined":true,"quarantine_cause":{"kind":"audit_fork","at":"2025-01-01T00:00:00Z"}}}}`)) // quarantined
	f.Add([]byte(`{"version":1,"peers":{"p":{"floor":"high","ceiling":"untrusted"}}}`))                                                    // floor above ceiling
	f.Add([]byte(`{"version":1,"peers":{"p":{"good":-1}}}`))                                                                               // negative count
	f.Add([]byte(`{"version":1,"peers":{"p":{"good":1e400}}}`))                                                                            // overflow
	f.Add([]byte(`{"version":1,"peers":{"p":{"recent":[{"kind":"success"},{"kind":"x","detail":"\u00e9"}]}}}`))                            // recent list
	f.Add([]byte(`{"version":2}`))                                                                                                         // future version
	f.Add([]byte(`null`))                                                                                                                  // JSON null
	f.Fuzz(func(t *testing.T, data []byte) {
		peers, err := decodeFile(data, "fuzz")
		if err != nil {
			return
		}
		cfg := Config{}
		out, err := json.Marshal(fileFormat{Version: fileVersion, Peers: peers})
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := decodeFile(out, "fuzz")
		if err != nil {
			t.Fatalf("reload of our own output failed: %v\n%s", err, out)
		}
		for p, st := range peers {
			st.Score(cfg, t0)
			st.Level(cfg, t0)
			st.DecayETA(cfg, t0)
			a, _ := json.Marshal(st)
			b, _ := json.Marshal(again[p])
			if string(a) != string(b) {
				t.Fatalf("peer %q changed on reload:\n%s\n%s", p, a, b)
			}
		}
	})
}
