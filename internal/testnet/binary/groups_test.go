package binary

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/testnet"
)

// eventuallyMust runs a command until it exits 0, while the group forms its
// first view or elects its first leader (exit 4: no quorum yet).
func eventuallyMust(t *testing.T, n *testnet.Node, args ...string) string {
	t.Helper()
	var out string
	testnet.Eventually(t, 60*time.Second, func() error {
		o, e, code := n.Run(t, args...)
		switch code {
		case 0:
			out = o
			return nil
		case 4:
			return fmt.Errorf("treaty %v: exit 4: %s", args, e)
		}
		t.Fatalf("%s: treaty %v: exit %d: %s", n.Name, args, code, e)
		return nil
	})
	return out
}

var committedAt = regexp.MustCompile(`at index (\d+)`)

// TestGroupsThroughTheCLI: four `treaty run` processes form a BFT group and a
// three-member Raft group with the CLI alone; a motion passes, its decision
// record verifies offline (and fails with one byte changed), and kv put, cas
// and get keep the contract's output and exit codes.
func TestGroupsThroughTheCLI(t *testing.T) {
	bin := treatyBin(t)
	names := []string{"acme", "globex", "initech", "umbrella"}
	var nodes []*testnet.Node
	for _, name := range names {
		nodes = append(nodes, testnet.Init(t, bin, name))
	}
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			testnet.Federate(t, nodes[i], nodes[j])
		}
	}
	for _, n := range nodes {
		n.Start(t)
	}
	for _, n := range nodes {
		n.Must(t, "group", "create", "reviews", "--mode", "bft", "--members", strings.Join(names, ","))
	}
	for _, n := range nodes[:3] {
		n.Must(t, "group", "create", "team", "--mode", "raft", "--members", "acme,globex,initech")
	}
	acme, umbrella := nodes[0], nodes[3]

	out := eventuallyMust(t, acme, "motion", "open", "reviews", "merge-pr-42", "--quorum", "3", "--deadline", "1h", "--text", "merge the reviewed PR 42")
	if !strings.Contains(out, "motion merge-pr-42 open") {
		t.Fatalf("motion open: %q", out)
	}
	for _, n := range nodes[:3] {
		out = eventuallyMust(t, n, "motion", "vote", "reviews", "merge-pr-42", "yes")
	}
	m := committedAt.FindStringSubmatch(out)
	if !strings.Contains(out, "passed") || m == nil {
		t.Fatalf("third vote: %q", out)
	}
	var shown struct {
		Outcome string   `json:"outcome"`
		Yes     []string `json:"yes"`
	}
	if err := json.Unmarshal([]byte(umbrella.Must(t, "motion", "show", "reviews", "merge-pr-42", "--json")), &shown); err != nil || shown.Outcome != "passed" || len(shown.Yes) != 3 {
		t.Fatalf("motion show on umbrella: %+v %v", shown, err)
	}
	if _, errOut, code := umbrella.Run(t, "motion", "vote", "reviews", "merge-pr-42", "no"); code != 1 || !strings.Contains(errOut, "motion-closed") {
		t.Fatalf("vote on a passed motion: exit %d %q", code, errOut)
	}

	var rec string
	testnet.Eventually(t, 30*time.Second, func() error {
		o, e, code := umbrella.Run(t, "decision", "export", "reviews", m[1])
		if code != 0 {
			return fmt.Errorf("export: exit %d: %s", code, e)
		}
		rec = o
		return nil
	})
	dir := t.TempDir()
	file := filepath.Join(dir, "decision.json")
	os.WriteFile(file, []byte(rec), 0o600)
	if o, e, code := acme.Run(t, "decision", "verify", file); code != 0 || !strings.Contains(o, "ok: decision "+m[1]) {
		t.Fatalf("verify: exit %d\n%s%s", code, o, e)
	}
	var r map[string]any
	json.Unmarshal([]byte(rec), &r)
	r["time"] = r["time"].(float64) + 1 // one changed field of the signed entry
	bad, _ := json.Marshal(r)
	os.WriteFile(file, bad, 0o600)
	if _, e, code := acme.Run(t, "decision", "verify", file); code != 1 || !strings.Contains(e, "certificate") {
		t.Fatalf("verify of a changed record: exit %d %q", code, e)
	}

	out = eventuallyMust(t, acme, "kv", "put", "team", "pr/42/reviewer", "alice")
	if !regexp.MustCompile(`^index \d+ version 1\n$`).MatchString(out) {
		t.Fatalf("kv put: %q", out)
	}
	if got := nodes[2].Must(t, "kv", "get", "team", "pr/42/reviewer"); got != "alice\n" {
		t.Fatalf("kv get: %q", got)
	}
	if _, e, code := nodes[1].Run(t, "kv", "cas", "team", "pr/42/reviewer", "0", "bob"); code != 1 || !strings.Contains(e, "cas-mismatch") {
		t.Fatalf("stale cas: exit %d %q", code, e)
	}
	if out := nodes[1].Must(t, "kv", "put", "team", "pr/42/reviewer", "bob", "--if-version", "1"); !strings.HasSuffix(out, "version 2\n") {
		t.Fatalf("cas put: %q", out)
	}
	if _, _, code := umbrella.Run(t, "kv", "put", "team", "k", "v"); code != 2 {
		t.Fatalf("put on a group this node does not run: exit %d, want 2", code)
	}
	ls := acme.Must(t, "group", "ls")
	for _, want := range []string{"reviews", "bft", "team", "raft"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("group ls lacks %q:\n%s", want, ls)
		}
	}
	var gs []struct {
		Name string `json:"name"`
		F    int    `json:"f"`
	}
	if err := json.Unmarshal([]byte(acme.Must(t, "group", "ls", "--json")), &gs); err != nil || len(gs) != 2 || gs[0].Name != "reviews" || gs[0].F != 1 {
		t.Fatalf("group ls --json: %+v %v", gs, err)
	}
}
