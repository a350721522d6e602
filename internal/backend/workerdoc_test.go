package backend

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docBlock returns the first ```lang block of docs/backends.md.
func docBlock(t *testing.T, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/backends.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```"+lang+"\n")
	if !ok {
		t.Fatalf("docs/backends.md has no %s example", lang)
	}
	body, _, _ := strings.Cut(rest, "```")
	return body
}

// The workers docs/backends.md shows work as documented.
func TestWorkerDocExamples(t *testing.T) {
	for _, tc := range []struct {
		lang, needs, input, want string
	}{
		{"python", "python3", `{"text":"three short words"}`, `{"words": 3}`},
		{"sh", "jq", `{"a":1}`, `{"peer":"PEER","echo":{"a":1}}`},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			if _, err := exec.LookPath(tc.needs); err != nil {
				t.Skipf("%s not installed", tc.needs)
			}
			p := filepath.Join(t.TempDir(), "worker")
			if err := os.WriteFile(p, []byte(docBlock(t, tc.lang)), 0o700); err != nil {
				t.Fatal(err)
			}
			w := &Worker{Argv: []string{p}, Timeout: 10 * time.Second}
			defer w.Close()
			in := inv(t, tc.input)
			out, err := w.Call(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tc.want, "PEER", in.Peer.String()); string(out) != want {
				t.Fatalf("out = %s, want %s", out, want)
			}
		})
	}
}
