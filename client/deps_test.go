package client

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestDependencyBound keeps client a thin library for agents: besides the
// standard library it may link only localapi and internal/h1pool, which links
// only the standard library. Re-adding an import of the node (any other
// internal/..., SQLite, gitleaks, Cedar) fails here.
func TestDependencyBound(t *testing.T) {
	t.Parallel()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{"github.com/treaty-dev/treaty/client", "github.com/treaty-dev/treaty/localapi", "github.com/treaty-dev/treaty/internal/h1pool"}
	for _, dep := range strings.Fields(string(out)) {
		if !slices.Contains(allowed, dep) {
			t.Errorf("client links %s; it may link only the standard library, localapi and internal/h1pool", dep)
		}
	}
	for _, forbidden := range []string{"sqlite", "gitleaks", "cedar"} {
		if strings.Contains(string(out), forbidden) {
			t.Errorf("client links a package matching %q", forbidden)
		}
	}
}
