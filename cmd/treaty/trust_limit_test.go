package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/trust"
)

// runTL runs the CLI in-process and returns what it printed and its exit code.
// It swaps os.Stdout and os.Stderr, so tests using it must not run in parallel.
func runTL(t *testing.T, a ...string) (stdout, stderr string, code int) {
	t.Helper()
	outF, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	code = run(context.Background(), a)
	os.Stdout, os.Stderr = oldOut, oldErr
	outF.Close()
	errF.Close()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	return string(o), string(e), code
}

func tlDID(t *testing.T, b byte) string {
	t.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().String()
}

// tlHome makes a home with `treaty init` and `treaty peer add` (bob and carol).
func tlHome(t *testing.T) (dir, bob, carol string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "h")
	bob, carol = tlDID(t, 1), tlDID(t, 2)
	for _, a := range [][]string{
		{"init", "--home", dir, "--name", "alice"},
		{"peer", "add", "--home", dir, "--name", "bob", "--addr", "127.0.0.1:7421", bob},
		{"peer", "add", "--home", dir, "--name", "carol", "--addr", "127.0.0.1:7422", carol},
	} {
		if _, e, code := runTL(t, a...); code != 0 {
			t.Fatalf("%v: exit %d: %s", a, code, e)
		}
	}
	return dir, bob, carol
}

func mustRun(t *testing.T, a ...string) string {
	t.Helper()
	out, e, code := runTL(t, a...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", a, code, e)
	}
	return out
}

func TestTrustLsNoEvidence(t *testing.T) {
	dir, bob, carol := tlHome(t)
	out := mustRun(t, "trust", "ls", "--home", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("trust ls:\n%s", out)
	}
	if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"NAME", "PEER", "SCORE", "LEVEL", "QUARANTINED", "FLOOR", "CEILING"}) {
		t.Fatalf("header %q", lines[0])
	}
	if f := strings.Fields(lines[1]); !slices.Equal(f, []string{"bob", bob, "0.500", "provisional", "no", "-", "-"}) {
		t.Fatalf("bob row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "carol" || f[1] != carol {
		t.Fatalf("carol row %q", lines[2])
	}

	var rows []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "trust", "ls", "--home", dir, "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("rows = %v", rows)
	}
	keys := []string{"bad", "decay_eta_ns", "good", "level", "name", "peer", "quarantined", "recent", "score", "updated"}
	got := make([]string, 0, len(rows[0]))
	for k := range rows[0] {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, keys) {
		t.Fatalf("JSON keys %v, want %v", got, keys)
	}
	if rows[0]["name"] != "bob" || rows[0]["peer"] != bob || rows[0]["level"] != "provisional" || rows[0]["score"] != 0.5 {
		t.Fatalf("bob = %v", rows[0])
	}
	if r, ok := rows[0]["recent"].([]any); !ok || len(r) != 0 {
		t.Fatalf("recent = %#v, want []", rows[0]["recent"])
	}
}

// The node holds an exclusive lock on trust.json while it runs; ls and show must
// still read it.
func TestTrustReadWhileBookHeld(t *testing.T) {
	dir, bob, _ := tlHome(t)
	stranger := tlDID(t, 3)
	b, err := trust.Open(trust.Config{}, filepath.Join(dir, node.TrustFile))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for range 3 {
		if _, err := b.Observe(bob, trust.Evidence{Kind: trust.KindDenied, Detail: "secret-cap"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Observe(stranger, trust.Evidence{Kind: trust.KindBadSignature, Detail: "forged"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "trust", "ls", "--home", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("trust ls:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "bob" || f[3] != "untrusted" {
		t.Fatalf("bob row %q, want untrusted after 3 denials", lines[1])
	}
	// A peer the trust book knows but the peer book does not is listed last, unnamed.
	if f := strings.Fields(lines[3]); !slices.Equal(f[:2], []string{"-", stranger}) || f[3] != "quarantined" || f[4] != "yes" {
		t.Fatalf("stranger row %q", lines[3])
	}

	show := mustRun(t, "trust", "show", "--home", dir, "bob")
	for _, want := range []string{
		"peer         bob " + bob + "\n",
		"level        untrusted\n",
		"quarantined  no\n",
		"floor        -\n",
		"decay        back to the prior in ",
		"recent evidence (3, oldest first):\n",
		"denied  -",
		"secret-cap\n",
	} {
		if !strings.Contains(show, want) {
			t.Errorf("trust show lacks %q:\n%s", want, show)
		}
	}
	show = mustRun(t, "trust", "show", "--home", dir, stranger)
	if !strings.Contains(show, "quarantined  yes (bad_signature at ") || !strings.Contains(show, ": forged)") {
		t.Errorf("stranger show:\n%s", show)
	}

	var row map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "trust", "show", "--home", dir, bob, "--json")), &row); err != nil {
		t.Fatal(err)
	}
	if row["name"] != "bob" || row["level"] != "untrusted" || row["decay_eta_ns"].(float64) <= 0 || len(row["recent"].([]any)) != 3 {
		t.Fatalf("show --json = %v", row)
	}

	// set cannot reach a node through the socket here and must not steal the book.
	_, stderr, code := runTL(t, "trust", "set", "--home", dir, "bob", "--floor", "trusted")
	if code != 1 || !strings.Contains(stderr, "held by a node") {
		t.Fatalf("set with the book held: exit %d: %s", code, stderr)
	}
}

func TestTrustSetDirect(t *testing.T) {
	dir, _, _ := tlHome(t)
	mustRun(t, "trust", "set", "--home", dir, "bob", "--floor", "trusted")
	if f := strings.Fields(strings.Split(mustRun(t, "trust", "ls", "--home", dir), "\n")[1]); f[3] != "trusted" || f[5] != "trusted" || f[6] != "-" {
		t.Fatalf("after --floor trusted: %v", f)
	}
	mustRun(t, "trust", "set", "--home", dir, "bob", "--ceiling", "high", "--floor", "none")
	show := mustRun(t, "trust", "show", "--home", dir, "bob")
	for _, want := range []string{"level        provisional\n", "floor        -\n", "ceiling      high\n", "operator  0  floor trusted\n", "floor cleared\n"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	mustRun(t, "trust", "set", "--home", dir, "bob", "--lift")
}

func TestTrustErrors(t *testing.T) {
	dir, _, _ := tlHome(t)
	mustRun(t, "trust", "set", "--home", dir, "bob", "--ceiling", "provisional")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"show unknown peer", []string{"trust", "show", "--home", dir, "dave"}, 2, `no peer "dave" in the peer book`},
		{"set unknown peer", []string{"trust", "set", "--home", dir, "dave", "--lift"}, 2, `no peer "dave" in the peer book`},
		{"set nothing", []string{"trust", "set", "--home", dir, "bob"}, 2, "at least one of --floor, --ceiling and --lift"},
		{"bad floor", []string{"trust", "set", "--home", dir, "bob", "--floor", "great"}, 2, `--floor "great": want quarantined, untrusted, provisional, trusted, high, or none`},
		{"bad ceiling", []string{"trust", "set", "--home", dir, "bob", "--ceiling", "max"}, 2, `--ceiling "max": want`},
		{"floor above ceiling", []string{"trust", "set", "--home", dir, "bob", "--floor", "high", "--ceiling", "trusted"}, 2, "floor high is above ceiling trusted"},
		{"floor above existing ceiling", []string{"trust", "set", "--home", dir, "bob", "--floor", "high"}, 1, "floor above ceiling"},
		{"show no peer", []string{"trust", "show", "--home", dir}, 2, "accepts 1 arg"},
		{"ls extra arg", []string{"trust", "ls", "--home", dir, "bob"}, 2, "unknown command"},
		{"unknown flag", []string{"trust", "ls", "--home", dir, "--yaml"}, 2, "unknown flag"},
		{"no home", []string{"trust", "ls", "--home", filepath.Join(t.TempDir(), "none")}, 1, "config:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runTL(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.msg)
			}
			if out != "" {
				t.Fatalf("stdout %q on error", out)
			}
		})
	}
}

// trust set goes to a running node first: the exact JSON the local API receives.
func TestTrustSetThroughNode(t *testing.T) {
	dir, bob, _ := tlHome(t)
	ln, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	bodies := make(chan string, 4)
	answer := `{}`
	status := http.StatusOK
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- r.Method + " " + r.URL.Path + " " + string(b)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--floor", "trusted"}, `{"peer":"` + bob + `","floor":"trusted","lift":false}`},
		{[]string{"--ceiling", "none", "--lift"}, `{"peer":"` + bob + `","ceiling":"","lift":true}`},
		{[]string{"--floor", "", "--ceiling", "NONE"}, `{"peer":"` + bob + `","floor":"","ceiling":"","lift":false}`},
		{[]string{"--floor", "High", "--ceiling", "high"}, `{"peer":"` + bob + `","floor":"High","ceiling":"high","lift":false}`},
	} {
		mustRun(t, append([]string{"trust", "set", "--home", dir, "bob"}, tc.args...)...)
		if got := <-bodies; got != "POST /v1/trust/set "+tc.want {
			t.Errorf("%v sent %s\nwant POST /v1/trust/set %s", tc.args, got, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, node.TrustFile)); !os.IsNotExist(err) {
		t.Fatalf("trust.json touched while a node answered: %v", err)
	}

	// A refusal from the node keeps its stage's exit code.
	status, answer = http.StatusBadRequest, `{"error":{"stage":"usage","reason":"bad level"}}`
	_, stderr, code := runTL(t, "trust", "set", "--home", dir, "bob", "--lift")
	<-bodies
	if code != 2 || !strings.Contains(stderr, "bad level") {
		t.Fatalf("refused: exit %d: %s", code, stderr)
	}
}

func TestLimitSetLsRm(t *testing.T) {
	dir, bob, carol := tlHome(t)
	out, stderr, code := runTL(t, "limit", "set", "--home", dir, "bob", "--rate", "10/s", "--burst", "20")
	if code != 0 || out != "" || stderr != "" {
		t.Fatalf("limit set: exit %d, out %q, err %q", code, out, stderr)
	}
	_, stderr, _ = runTL(t, "limit", "set", "--home", dir, "bob", "--cap", "echo", "--concurrency", "2", "--cost", "100/1h")
	if !strings.Contains(stderr, `warning: this node exposes no capability "echo"`) {
		t.Errorf("no warning for an unexposed capability: %q", stderr)
	}
	mustRun(t, "limit", "set", "--home", dir, "*", "--dir", "both", "--bytes-in", "1000", "--window", "30s")
	mustRun(t, "limit", "set", "--home", dir, carol, "--dir", "out", "--rate", "2")
	// Only the flags given change.
	mustRun(t, "limit", "set", "--home", dir, "bob", "--concurrency", "3")

	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := cfg.Budget.Rule(bob, "", budget.In); !ok || r.Limit != (budget.Limit{Rate: 10, Burst: 20, Concurrency: 3}) {
		t.Fatalf("bob's rule in treaty.yaml: %+v %v", r, ok)
	}

	out = mustRun(t, "limit", "ls", "--home", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"NAME", "PEER", "CAPABILITY", "DIR", "LIMIT"},
		{"-", "default", "-", "both", "unlimited"},
		{"-", "*", "-", "both", "bytes in 1000/30s"},
	}
	bobRows := [][]string{
		{"bob", bob, "-", "in", "10/s burst 20, concurrency 3"},
		{"bob", bob, "echo", "in", "concurrency 2, cost 100/1h"},
	}
	carolRows := [][]string{{"carol", carol, "-", "out", "2/s burst 2"}}
	if bob < carol {
		want = append(append(want, bobRows...), carolRows...)
	} else {
		want = append(append(want, carolRows...), bobRows...)
	}
	if len(lines) != len(want) {
		t.Fatalf("limit ls:\n%s", out)
	}
	for i, w := range want {
		cols := strings.Fields(lines[i])
		got := append(cols[:4:4], strings.Join(cols[4:], " "))
		if !slices.Equal(got, w) {
			t.Errorf("line %d = %q, want %q", i, got, w)
		}
	}

	var js struct {
		Default map[string]any   `json:"default"`
		Rules   []map[string]any `json:"rules"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "limit", "ls", "--home", dir, "--json")), &js); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(js.Default, map[string]any{"summary": "unlimited"}) {
		t.Errorf("default = %v", js.Default)
	}
	wantJS := map[string]map[string]any{
		"*": {"name": "", "peer": "*", "dir": "both", "bytes_in": 1000.0, "window": "30s", "summary": "bytes in 1000/30s"},
		bob + " ": {"name": "bob", "peer": bob, "dir": "in", "rate": 10.0, "burst": 20.0, "concurrency": 3.0,
			"summary": "10/s burst 20, concurrency 3"},
		bob + " echo": {"name": "bob", "peer": bob, "capability": "echo", "dir": "in", "concurrency": 2.0,
			"cost": 100.0, "cost_window": "1h", "summary": "concurrency 2, cost 100/1h"},
		carol + " ": {"name": "carol", "peer": carol, "dir": "out", "rate": 2.0, "summary": "2/s burst 2"},
	}
	if len(js.Rules) != len(wantJS) {
		t.Fatalf("rules = %v", js.Rules)
	}
	for _, r := range js.Rules {
		k := r["peer"].(string)
		if k != "*" {
			c, _ := r["capability"].(string)
			k += " " + c
		}
		if !reflect.DeepEqual(r, wantJS[k]) {
			t.Errorf("rule %s = %v\nwant %v", k, r, wantJS[k])
		}
	}

	mustRun(t, "limit", "rm", "--home", dir, "bob", "--cap", "echo")
	_, stderr, code = runTL(t, "limit", "rm", "--home", dir, "bob", "--cap", "echo")
	if code != 0 || !strings.Contains(stderr, "no such rule to remove") {
		t.Fatalf("second rm: exit %d: %q", code, stderr)
	}
	mustRun(t, "limit", "rm", "--home", dir, "*", "--dir", "both")
	out = mustRun(t, "limit", "ls", "--home", dir)
	if strings.Contains(out, "echo") || strings.Contains(out, "bytes in") {
		t.Fatalf("after rm:\n%s", out)
	}
}

func TestLimitErrors(t *testing.T) {
	dir, _, _ := tlHome(t)
	mustRun(t, "limit", "set", "--home", dir, "bob", "--rate", "1")
	before, err := os.ReadFile(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	set := func(a ...string) []string { return append([]string{"limit", "set", "--home", dir}, a...) }
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no limit flags", set("bob"), 2, "nothing to set"},
		{"no peer", set("--rate", "1"), 2, "accepts 1 arg"},
		{"unknown peer", set("dave", "--rate", "1"), 2, `no peer "dave" in the peer book`},
		{"did outside the book", set(tlDID(t, 9), "--rate", "1"), 2, "in the peer book"},
		{"bad rate", set("bob", "--rate", "fast"), 2, `--rate "fast": want N/s`},
		{"negative rate", set("bob", "--rate", "-1/s"), 2, "--rate"},
		{"bad cost", set("bob", "--cost", "100"), 2, `--cost "100": want N/WINDOW`},
		{"bad dir", set("bob", "--dir", "sideways", "--rate", "1"), 2, `--dir "sideways": want in, out or both`},
		{"bad cap", set("bob", "--cap", "Echo", "--rate", "1"), 2, `--cap "Echo": want a capability name`},
		{"reserved cap", set("bob", "--cap", "treaty.ping", "--rate", "1"), 2, "--cap"},
		{"negative burst", set("bob", "--burst", "-1"), 2, "--burst -1: want an integer >= 0"},
		{"burst too big", set("bob", "--burst", "9999999"), 2, "--burst 9999999 outside [0, 1000000]"},
		{"burst without rate", set("bob", "--dir", "out", "--burst", "5"), 2, "--burst 5 needs a --rate"},
		{"non-integer concurrency", set("bob", "--concurrency", "x"), 2, `"--concurrency"`},
		{"negative bytes", set("bob", "--bytes-out", "-5"), 2, "--bytes-out -5"},
		{"window without bytes", set("bob", "--window", "1m"), 2, "needs --bytes-in or --bytes-out"},
		{"short window", set("bob", "--bytes-in", "5", "--window", "10ms"), 2, "--window 10ms"},
		{"rm bad dir", []string{"limit", "rm", "--home", dir, "bob", "--dir", "up"}, 2, "--dir"},
		{"rm unknown peer", []string{"limit", "rm", "--home", dir, "dave"}, 2, "in the peer book"},
		{"ls extra arg", []string{"limit", "ls", "--home", dir, "x"}, 2, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runTL(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.msg)
			}
			if out != "" {
				t.Fatalf("stdout %q on error", out)
			}
			after, _ := os.ReadFile(filepath.Join(dir, config.FileName))
			if !bytes.Equal(before, after) {
				t.Fatal("treaty.yaml changed by a refused command")
			}
		})
	}
}
