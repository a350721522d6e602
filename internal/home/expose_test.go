package home

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolveCommandModes: an exec backend runs as the node's user with every
// peer's input, so a program anyone can write (they could change what
// runs) is refused; a private one resolves to its absolute path.
func TestResolveCommandModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\ncat\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.sh", 0o755)
	got, err := ResolveCommand(ok + " --flag")
	if err != nil || !strings.HasPrefix(got, ok) {
		t.Fatalf("ResolveCommand(private script) = %q, %v", got, err)
	}
	for name, mode := range map[string]os.FileMode{"world.sh": 0o777, "other-w.sh": 0o757, "plain.sh": 0o644} {
		p := write(name, mode)
		if _, err := ResolveCommand(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("mode %04o: %v, want a refusal wrapping ErrInvalid", mode, err)
		}
	}
	if _, err := ResolveCommand(filepath.Join(dir, "world.sh")); err == nil || !strings.Contains(err.Error(), "writable by anyone") {
		t.Errorf("the refusal does not say why: %v", err)
	}
}
