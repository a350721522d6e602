package homedir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// A token file must be a regular file of its own: a symlink (to another
// user's file, or to a 0600 file elsewhere) is refused rather than followed,
// and a FIFO or a directory is refused without blocking or reading.
func TestTokenFileMustBeRegular(t *testing.T) {
	t.Parallel()
	const name = "x.token"
	good := t.TempDir()
	if _, err := LoadOrCreateToken(good, name); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(path string) error{
		"symlink":   func(p string) error { return os.Symlink(filepath.Join(good, name), p) },
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
	}
	for what, create := range cases {
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := create(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := LoadOrCreateToken(dir, name); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "regular file") {
					t.Fatalf("a %s as the token file: %v; want a refusal naming a regular file", what, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("LoadOrCreateToken blocked on a %s", what)
			}
		})
	}
}
