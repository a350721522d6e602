package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/localapi"
)

// hostile is what a peer, a group member or a forged file may put in any
// string: a screen clear, a window-title change, a bidi override, a C1
// control, an invalid byte, a tab and a newline starting a fake line.
const hostile = "ok\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\u0085\xff\t|\nFAKE line"

// checkTerminalSafe fails when text a terminal would show holds a control
// character other than the newline ending a line, a bidi override, an invalid
// byte, or a line that the hostile string started.
func checkTerminalSafe(t *testing.T, what, text string) {
	t.Helper()
	if !utf8.ValidString(text) {
		t.Errorf("%s: invalid UTF-8 reached the terminal: %q", what, text)
	}
	for _, r := range text {
		if r != '\n' && unsafeRune(r) {
			t.Errorf("%s: %U reached the terminal: %q", what, r, text)
			break
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "FAKE") {
			t.Errorf("%s: a newline in a field started a line of its own: %q", what, text)
			break
		}
	}
}

// fakeNode serves the local API on dir's socket, answering every listing
// with hostile strings in every field.
func fakeNode(t *testing.T, dir string) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	h, did := hostile, tlDID(t, 9)
	answers := map[string]any{
		"GET /v1/status": localapi.Status{ID: did, Name: h, Addr: h, ConfigError: h},
		"GET /v1/peers":  []localapi.PeerInfo{{Name: h, ID: h, Addr: h, Breaker: h, Source: h}},
		"GET /v1/caps":   localapi.CapsResponse{Capabilities: []localapi.CapabilityInfo{{Name: h, Description: h}}},
		"GET /v1/members": []localapi.MemberInfo{
			{Name: h, ID: h, Addr: h, Source: h, Status: h, State: h, Org: h, Addrs: []string{h}, Via: h},
		},
		"GET /v1/groups": []localapi.GroupInfo{
			{Name: h, Error: h},
			{Name: h, Mode: h, Leader: did, Members: []localapi.GroupMember{{ID: did, Name: h, Refused: h}, {ID: h}}},
		},
		"GET /v1/kv/ls":        localapi.KVList{Keys: []string{h}},
		"GET /v1/kv/get":       localapi.KVItem{Group: "g", Key: "k", Value: h, Version: 1, Index: 2},
		"GET /v1/motions/show": localapi.MotionInfo{Name: h, Kind: h, Subject: h, Proposer: h, Text: h, Yes: []string{h}, No: []string{h}, Outcome: h, Reason: h},
		"GET /v1/motions/ls":   localapi.MotionList{Motions: []localapi.MotionInfo{{Name: h, Kind: h, Outcome: h}}},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		a, ok := answers[r.Method+" "+r.URL.Path]
		if !ok { // every other request is refused by the remote side, with a hostile reason
			w.WriteHeader(http.StatusForbidden)
			a = localapi.ErrorResponse{Error: &localapi.ErrorBody{Stage: localapi.StagePolicy, Reason: h, Remote: true}}
		}
		json.NewEncoder(w).Encode(a)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestListingsEscapeTerminalControls: nothing another party chose reaches the
// operator's terminal as a control sequence, in any listing, show page or
// error line; each error is still one line with the documented exit code.
func TestListingsEscapeTerminalControls(t *testing.T) {
	dir, _, _ := tlHome(t)
	fakeNode(t, dir)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"status"}, 0},
		{[]string{"peer", "ls"}, 0},
		{[]string{"caps", "bob"}, 0},
		{[]string{"members"}, 0},
		{[]string{"group", "ls"}, 0},
		{[]string{"kv", "ls", "g"}, 0},
		{[]string{"motion", "show", "g", "m"}, 0},
		{[]string{"motion", "ls", "g"}, 0},
		{[]string{"call", "bob", "echo"}, 3},
		{[]string{"trust", "set", "bob", "--lift"}, 3},
	} {
		args := append(tc.args, "--home", dir)
		out, stderr, code := runTL(t, args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d; stderr %q", tc.args, code, tc.code, stderr)
		}
		checkTerminalSafe(t, strings.Join(tc.args, " ")+" stdout", out)
		checkTerminalSafe(t, strings.Join(tc.args, " ")+" stderr", stderr)
		if code != 0 && strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: the error is not one line: %q", tc.args, stderr)
		}
	}
	// kv get prints the value as data: exact when it goes to a file or a pipe.
	if out, _, code := runTL(t, "kv", "get", "g", "k", "--home", dir); code != 0 || out != strings.ToValidUTF8(hostile, "\uFFFD")+"\n" {
		t.Errorf("kv get to a file: exit %d, %q; want the value unchanged", code, out)
	}
}

// TestDecisionVerifyEscapes: a decision record comes from anywhere; the parts
// a Raft record does not authenticate (its result) are printed escaped and
// labelled as the exporting node's word.
func TestDecisionVerifyEscapes(t *testing.T) {
	k, err := identity.FromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	g, err := fsm.NewGroup("g1", fsm.ModeRaft, 0, []identity.PublicKey{k.Public(), tlKey(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := fsm.SignRequest(k, g.ID(), 1, fsm.OpenMotion("m1", 2, 0, "merge"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := fsm.New(g)
	e := fsm.Entry{Time: 1000, Request: q.Encode()}
	res := m.Apply(1, e)
	for name, change := range map[string]func(r *fsm.Result){
		"motion": func(r *fsm.Result) { r.Motion = hostile },
		"reason": func(r *fsm.Result) { r.Code, r.Reason = hostile, hostile },
	} {
		r := res
		change(&r)
		b, err := json.Marshal(fsm.NewRecord(g, 1, e, r, nil))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "d.json")
		os.WriteFile(path, b, 0o600)
		out, stderr, code := runTL(t, "decision", "verify", path)
		checkTerminalSafe(t, name+" stdout", out)
		checkTerminalSafe(t, name+" stderr", stderr)
		if code != 0 || !strings.Contains(out, "result (not attested") {
			t.Errorf("%s: exit %d; a Raft record's unsigned result must verify and be labelled so:\n%s%s", name, code, out, stderr)
		}
	}
}

// TestErrorLineJoined: errors joined with newlines still print as one line.
func TestErrorLineJoined(t *testing.T) {
	dir, _, _ := tlHome(t)
	if err := os.WriteFile(filepath.Join(dir, "treaty.yaml"), []byte("name: alice\nbogus: 1\nalso: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runTL(t, "peer", "ls", "--home", dir)
	if code == 0 || strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, `\u000a`) {
		t.Fatalf("exit %d, stderr %q; want one readable line", code, stderr)
	}
}

func tlKey(t *testing.T, b byte) identity.PublicKey {
	t.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcode ✓": "plain text, ünïcode ✓",
		"a\x1b[31mb":            `a\u001b[31mb`,
		"rtl\u202eexe":          `rtl\u202eexe`,
		"c1\u009bx":             `c1\u009bx`,
		"tag\U000E0041":         `tag\udb40\udc41`,
		"bad\xffbyte":           `bad\xffbyte`,
		"two\nlines\tand tab":   `two\u000alines\u0009and tab`,
		"real \uFFFD stays":     "real \uFFFD stays",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
	// A character device, as a terminal is, seen through the CLI's stdout wrapper.
	if dev, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		if !isTerminal(&checkedWriter{w: dev}) {
			t.Error("the CLI's stdout wrapper hides a character device from isTerminal")
		}
		dev.Close()
	}
	if f, err := os.CreateTemp(t.TempDir(), "out"); err == nil {
		if isTerminal(&checkedWriter{w: f}) {
			t.Error("a file is taken for a terminal")
		}
		f.Close()
	}
	var b bytes.Buffer
	termSafe(&b).Write([]byte("a\tb\n\x1b"))
	if b.String() != "a\tb\n\\u001b" {
		t.Errorf("termSafe keeps layout and escapes the rest: %q", b.String())
	}
}
