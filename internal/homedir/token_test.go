package homedir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateToken(t *testing.T) {
	t.Parallel()
	const name = "x.token"
	dir := t.TempDir()
	tok, err := LoadOrCreateToken(dir, name)
	if err != nil || len(tok) != 64 {
		t.Fatalf("first use: %q, %v", tok, err)
	}
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v", st.Mode().Perm(), err)
	}
	if again, err := LoadOrCreateToken(dir, name); err != nil || again != tok {
		t.Fatalf("second use: %q, %v; want the same token", again, err)
	}
	if err := os.Chmod(filepath.Join(dir, name), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(dir, name); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable token accepted: %v", err)
	}
	short := t.TempDir()
	if err := os.WriteFile(filepath.Join(short, name), []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(short, name); err == nil {
		t.Fatal("a 3-character token was accepted")
	}
}
