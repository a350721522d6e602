//go:build unix

package audit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFileModes: audit.db and its -wal and -shm are 0600 under any umask, and
// a file left readable by others is tightened on Open.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	appendN(t, l, 0, 3)
	check := func() {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Fatalf("%s mode %04o, want 0600", filepath.Base(p), m)
			}
		}
	}
	check()
	l.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(t.Context(), Config{Path: path, Identity: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	appendN(t, l2, 3, 1)
	check()
}
