package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/membership"
)

// TestRevokePrepare: --prepare writes a verifiable self-revocation of the
// home's key, mode 0600, never over an existing file; the offline commands
// need no running node, and mistakes are usage errors.
func TestRevokePrepare(t *testing.T) {
	dir, _, _ := tlHome(t)
	self := strings.TrimSpace(mustRun(t, "id", "--home", dir))
	file := filepath.Join(t.TempDir(), "alice.revoke")
	mustRun(t, "revoke", "--home", dir, "--prepare", file, "--reason", "lost laptop")
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("prepared file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	r, err := membership.ParseRevocation(string(b))
	if err != nil || r.Key.String() != self || r.Reason != "lost laptop" {
		t.Fatalf("prepared revocation %+v, %v; want one of %s", r, err, self)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("treaty-revoke-v1.AAAA\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"overwrite", []string{"revoke", "--home", dir, "--prepare", file}},
		{"reason without prepare", []string{"revoke", "--home", dir, "--reason", "x"}},
		{"bidi in the reason", []string{"revoke", "--home", dir, "--prepare", file + "2", "--reason", "a\u202eb"}},
		{"a peer name, not a file", []string{"revoke", "--home", dir, "bob"}},
		{"a file that is not a revocation", []string{"revoke", "--home", dir, garbage}},
		{"invite without a positive ttl", []string{"invite", "--home", dir, "--ttl", "0s"}},
		{"invite without uses", []string{"invite", "--home", dir, "--uses", "0"}},
		{"join without a token", []string{"join", "--home", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, e, code := runTL(t, tc.args...); code != 2 {
				t.Fatalf("%v: exit %d (%s), want 2", tc.args, code, e)
			}
		})
	}
	if b2, _ := os.ReadFile(file); string(b2) != string(b) {
		t.Fatal("the prepared file changed")
	}
	// Offline, peer ls names where each entry came from.
	if out := mustRun(t, "peer", "ls", "--home", dir); !strings.Contains(out, "SOURCE") || !strings.Contains(out, "operator") {
		t.Fatalf("peer ls:\n%s", out)
	}
}
