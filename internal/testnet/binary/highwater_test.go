package binary

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// setAuditMaxBytes edits a stopped node's treaty.yaml.
func setAuditMaxBytes(t *testing.T, n *testnet.Node, max int64) {
	t.Helper()
	c, err := config.Load(n.Home)
	if err != nil {
		t.Fatal(err)
	}
	c.Audit.MaxBytes = max
	if err := config.Save(n.Home, c); err != nil {
		t.Fatal(err)
	}
}

// TestAuditHighWater: a callee whose audit.db reached audit.max_bytes refuses
// calls at stage audit with a clear reason; so does a caller, locally, with
// the numbers; raising the limit resumes calls.
func TestAuditHighWater(t *testing.T) {
	bin := treatyBin(t)
	acme, globex := testnet.Init(t, bin, "acme"), testnet.Init(t, bin, "globex")
	testnet.Federate(t, acme, globex)
	globex.Must(t, "expose", "echo", "--exec", testnet.WriteScript(t, `cat`))
	globex.Must(t, "grant", "acme", "echo")
	setAuditMaxBytes(t, globex, 1<<20)
	acme.Start(t)
	globex.Start(t)

	input := []byte(`{"text":"` + strings.Repeat("the quick brown fox jumps over the lazy dog ", 1300) + `"}`) // ~57 KB
	refused := ""
	for i := 0; i < 40 && refused == ""; i++ { // 1 MiB holds about 17 such answers
		_, errOut, code := acme.RunInput(t, input, "call", "globex", "echo", "-")
		if code != 0 {
			refused = errOut
			if !strings.Contains(errOut, "remote audit: ") || !strings.Contains(errOut, "(disk_high_water)") {
				t.Fatalf("call %d: exit %d, stderr %q; want a remote audit refusal naming disk_high_water", i, code, errOut)
			}
		}
	}
	if refused == "" {
		t.Fatal("40 calls of 57 KB each never reached the callee's 1 MiB max_bytes")
	}
	t.Logf("caller saw: %s", strings.TrimSpace(refused))
	if !strings.Contains(globex.Log(), "audit.high_water") {
		t.Fatalf("callee logged no audit.high_water alert:\n%s", globex.Log())
	}

	// Raising the limit (it is read at start) lets calls through again.
	globex.Stop(t)
	setAuditMaxBytes(t, globex, 0)
	globex.Start(t)
	acme.Must(t, "call", "globex", "echo", `{"n":1}`)

	// The caller's own log over its mark: refused locally, with the numbers.
	acme.Stop(t)
	setAuditMaxBytes(t, acme, 1<<20)
	acme.Start(t)
	_, errOut, code := acme.RunInput(t, input, "call", "globex", "echo", "-")
	if code == 0 || !strings.Contains(errOut, "audit") || !strings.Contains(errOut, "disk high-water mark: audit log uses ") ||
		!strings.Contains(errOut, "> 1 MiB max_bytes; refusing new calls") {
		t.Fatalf("local refusal: exit %d, stderr %q", code, errOut)
	}
	t.Logf("local caller saw: %s", strings.TrimSpace(errOut))
	if out := globex.Must(t, "audit", "verify"); !strings.HasPrefix(out, "ok ") {
		t.Fatalf("callee verify: %s", out)
	}
}
