package node

import (
	"os"
	"strings"
	"testing"
)

func TestOpenRefusesWritableHome(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o770, 0o707, 0o777} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(Options{Home: dir})
		if err == nil || !strings.Contains(err.Error(), "chmod 700 "+dir) || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("mode %o: %v, want a refusal naming chmod 700", mode, err)
		}
	}
	// Readable by others but not writable passes this check (and fails later
	// only for the missing key).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Home: dir}); err == nil || strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("mode 755: %v", err)
	}
}
