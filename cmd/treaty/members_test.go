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

// TestRevokeDirectoryIsAPeer: an argument naming a directory (a peer's home
// beside this one, say) is a peer to revoke by the governing group, not a
// statement file to publish; a FIFO is still refused as a file.
func TestRevokeDirectoryIsAPeer(t *testing.T) {
	dir, _, _ := tlHome(t)
	bob := filepath.Join(t.TempDir(), "bob")
	if err := os.Mkdir(bob, 0o700); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runTL(t, "revoke", "--home", dir, bob)
	if code == 0 || strings.Contains(stderr, "regular file") || !strings.Contains(stderr, "govern") {
		t.Fatalf("revoke DIR: exit %d, %q; want it taken as a peer (no governing group here)", code, stderr)
	}
}

// TestGovernOffline: revoking another member's key or admitting one takes a
// governing group; without membership.governor both are usage errors that
// say so, whether or not a node runs.
func TestGovernOffline(t *testing.T) {
	dir, bob, _ := tlHome(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"revoke a peer without a governor", []string{"revoke", "--home", dir, "bob"}, 2, "membership.governor"},
		{"revoke a did without a governor", []string{"revoke", "--home", dir, bob}, 2, "membership.governor"},
		{"admit without a governor", []string{"admit", "--home", dir, "--name", "dave", "--addr", "127.0.0.1:1", tlDID(t, 5)}, 2, "membership.governor"},
		{"admit without a name", []string{"admit", "--home", dir, "--addr", "127.0.0.1:1", tlDID(t, 5)}, 2, "--name"},
		{"wait on a self-revocation", []string{"revoke", "--home", dir, "--wait"}, 2, "go with PEER"},
		{"bad deadline", []string{"revoke", "--home", dir, "bob", "--deadline", "-1h"}, 2, "--deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runTL(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.msg)
			}
		})
	}
	// With a governor configured, the request goes to the node (none runs here).
	f, err := os.OpenFile(filepath.Join(dir, "treaty.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("membership:\n  governor:\n    group: board\n")
	f.Close()
	if _, stderr, code := runTL(t, "revoke", "--home", dir, "bob"); code != 1 || !strings.Contains(stderr, "no node is running") {
		t.Fatalf("revoke with a governor and no node: exit %d, %q", code, stderr)
	}
}
