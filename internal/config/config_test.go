package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const bob = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"

func TestParseValid(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`name: alice
peers:
  - {name: bob, id: ` + bob + `, addr: "127.0.0.1:7421"}
capabilities:
  - name: review
    exec: {command: "/bin/review --fast"}
    timeout: 5s
limits: {max_body_bytes: 2048}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen {
		t.Errorf("Listen = %q, want the loopback default", c.Listen)
	}
	if p, ok := c.Peer("bob"); !ok || p.ID != bob {
		t.Errorf("Peer(bob) = %+v, %v", p, ok)
	}
	if cp, ok := c.Capability("review"); !ok || cp.Timeout.D().Seconds() != 5 {
		t.Errorf("Capability(review) = %+v, %v", cp, ok)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	peer := func(name, id, addr string) string {
		return "name: a\npeers:\n  - {name: " + name + ", id: " + id + ", addr: \"" + addr + "\"}\n"
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "name: a\nnmae: b\n", "nmae"},
		{"bad name", "name: Alice\n", "name"},
		{"no name", "listen: 127.0.0.1:1\n", "name"},
		{"bad listen", "name: a\nlisten: nowhere\n", "listen"},
		{"bad did", peer("bob", "did:key:zNope", "127.0.0.1:1"), "peers[0].id"},
		{"bad addr", peer("bob", bob, "127.0.0.1"), "peers[0].addr"},
		{"no host", peer("bob", bob, ":7421"), "no host"},
		{"bad peer name", peer("Bob", bob, "127.0.0.1:1"), "peers[0].name"},
		{"peer twice", "name: a\npeers:\n  - {name: b, id: " + bob + ", addr: \"127.0.0.1:1\"}\n  - {name: c, id: " + bob + ", addr: \"127.0.0.1:1\"}\n", "listed twice"},
		{"reserved capability", "name: a\ncapabilities:\n  - name: treaty.caps\n", "capabilities[0].name"},
		{"homoglyph capability", "name: a\ncapabilities:\n  - name: revіew\n", "capabilities[0].name"},
		{"capability twice", "name: a\ncapabilities:\n  - name: x\n  - name: x\n", "defined twice"},
		{"exec and http", "name: a\ncapabilities:\n  - {name: x, exec: {command: a}, http: {url: \"http://127.0.0.1\"}}\n", "choose one"},
		{"unterminated quote", "name: a\ncapabilities:\n  - {name: x, exec: {command: \"a 'b\"}}\n", "unterminated quote"},
		{"empty command", "name: a\ncapabilities:\n  - {name: x, exec: {command: \" \"}}\n", "empty command"},
		{"http stream", "name: a\ncapabilities:\n  - {name: x, stream: true, http: {url: \"http://127.0.0.1\"}}\n", "cannot stream"},
		{"bad duration", "name: a\nlimits: {call_timeout: soon}\n", "invalid duration"},
		{"timeout too long", "name: a\ncapabilities:\n  - {name: x, timeout: 2h}\n", "timeout"},
		{"negative body", "name: a\nlimits: {max_body_bytes: -1}\n", "max_body_bytes"},
		{"audit content", "name: a\naudit: {content: some}\n", "audit.content"},
		{"short retention", "name: a\naudit: {retention: 1m}\n", "retention"},
		{"rule peer", "name: a\nsanitize:\n  rules:\n    - {peer: nobody}\n", "sanitize.rules[0].peer"},
		{"budget peer nickname", "name: a\nbudget:\n  rules:\n    - {peer: bob, rate: 1}\n", "budget"},
		{"oversized", "name: a\n#" + strings.Repeat("x", MaxFileBytes), "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &Config{Name: "alice", Listen: DefaultListen,
		Peers:        []Peer{{Name: "bob", ID: bob, Addr: "127.0.0.1:7421"}},
		Capabilities: []Capability{{Name: "x", Exec: &ExecBackend{Command: JoinCommand([]string{"/bin/a b", "it's"})}}}}
	if err := Save(dir, c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("treaty.yaml: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	argv, err := SplitCommand(got.Capabilities[0].Exec.Command)
	if err != nil || !slices.Equal(argv, []string{"/bin/a b", "it's"}) {
		t.Fatalf("command round trip = %q, %v", argv, err)
	}
	if err := Save(dir, &Config{Name: "Bad Name", Listen: DefaultListen}); err == nil {
		t.Fatal("Save wrote an invalid config")
	}
	if _, err := Load(dir); err != nil {
		t.Fatalf("a refused Save damaged the file: %v", err)
	}
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
		err  error
	}{
		{"a b  c", []string{"a", "b", "c"}, nil},
		{"\ta\nb ", []string{"a", "b"}, nil},
		{`'a b' "c d"`, []string{"a b", "c d"}, nil},
		{`a'b'"c"d`, []string{"abcd"}, nil},
		{`"say \"hi\" \\ \n"`, []string{`say "hi" \ \n`}, nil},
		{`'no \escape'`, []string{`no \escape`}, nil},
		{`a\ b`, []string{"a b"}, nil},
		{`''`, []string{""}, nil},
		{`a ""`, []string{"a", ""}, nil},
		{`$HOME *.go`, []string{"$HOME", "*.go"}, nil}, // no expansion: never a shell
		{`a; rm -rf /`, []string{"a;", "rm", "-rf", "/"}, nil},
		{`'open`, nil, ErrQuote},
		{`"open`, nil, ErrQuote},
		{`"esc\"`, nil, ErrQuote},
		{"", nil, nil},
		{"   ", nil, nil},
	} {
		got, err := SplitCommand(tc.in)
		if tc.want == nil && tc.err == nil { // empty
			if err == nil {
				t.Errorf("SplitCommand(%q) accepted an empty command", tc.in)
			}
			continue
		}
		if !errors.Is(err, tc.err) || !slices.Equal(got, tc.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestJoinCommandRoundTrip(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"/bin/echo"},
		{"/a b/c", "it's", `"q"`, `back\slash`, "", "tab\there", "$x", "ü"},
	} {
		got, err := SplitCommand(JoinCommand(args))
		if err != nil || !slices.Equal(got, args) {
			t.Errorf("SplitCommand(JoinCommand(%q)) = %q, %v", args, got, err)
		}
	}
}

func FuzzSplitJoin(f *testing.F) {
	f.Add("a", "b c")
	f.Add("it's", `"x"\`)
	f.Fuzz(func(t *testing.T, a, b string) {
		args := []string{a, b}
		got, err := SplitCommand(JoinCommand(args))
		if err != nil || !slices.Equal(got, args) {
			t.Fatalf("SplitCommand(JoinCommand(%q)) = %q, %v", args, got, err)
		}
	})
}

// FuzzParse feeds treaty.yaml bytes to Parse: it must never panic, and what it
// accepts must be valid and parse again once written back.
func FuzzParse(f *testing.F) {
	f.Add([]byte("name: a\n"))
	f.Add([]byte("name: a\nlisten: \"[::1]:7420\"\npeers:\n  - {name: b, id: " + bob + ", addr: \"127.0.0.1:1\"}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		out, err := yaml.Marshal(c) // what Save writes, without the disk
		if err != nil {
			t.Fatalf("marshal of a parsed config: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("Parse of what Save would write: %v\n%s", err, out)
		}
	})
}

func TestValidBudgetCapability(t *testing.T) {
	for s, want := range map[string]bool{
		"echo": true, "group:team": true, "group:": false, "group:Team": false,
		"group:treaty.x": false, "group:a:b": false, "treaty.ping": false, "": false,
	} {
		if got := ValidBudgetCapability(s); got != want {
			t.Errorf("ValidBudgetCapability(%q) = %v, want %v", s, got, want)
		}
	}
}
