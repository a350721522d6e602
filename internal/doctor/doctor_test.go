package doctor_test

import (
	"bytes"
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/treaty-dev/treaty/internal/doctor"
	"github.com/treaty-dev/treaty/internal/testnet"
)

func run(t *testing.T, m *testnet.Member, now func() time.Time) []doctor.Finding {
	t.Helper()
	fs, err := doctor.Run(context.Background(), doctor.Options{Home: m.Home, Now: now, Timeout: 3 * time.Second,
		Statfs: func(string) (uint64, uint64, error) { return 100 << 30, 200 << 30, nil }})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	doctor.Write(&b, fs)
	t.Logf("doctor on %s:\n%s", m.Name, b.String())
	return fs
}

// failed returns the failed findings of check (a prefix, such as "peer ").
func failed(fs []doctor.Finding, check string) []doctor.Finding {
	var out []doctor.Finding
	for _, f := range fs {
		if f.Status == doctor.Fail && strings.HasPrefix(f.Check, check) {
			out = append(out, f)
		}
	}
	return out
}

// wantOnly asserts the findings fail exactly at check, with a fix.
func wantOnly(t *testing.T, fs []doctor.Finding, check, text string) {
	t.Helper()
	if doctor.Healthy(fs) {
		t.Fatalf("healthy; want a failure at %s", check)
	}
	got := failed(fs, check)
	if len(got) == 0 {
		t.Fatalf("no failure at %s", check)
	}
	for _, f := range got {
		if !strings.Contains(f.Text, text) || f.Fix == "" {
			t.Errorf("%s: %q (fix %q); want a text with %q and a fix", f.Check, f.Text, f.Fix, text)
		}
	}
	for _, f := range fs {
		if f.Status == doctor.Fail && !strings.HasPrefix(f.Check, check) {
			t.Errorf("unrelated failure %s: %s", f.Check, f.Text)
		}
	}
}

func cluster(t *testing.T) (*testnet.Cluster, *testnet.Member, *testnet.Member) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "beta"}})
	return c, c.Members[0], c.Members[1]
}

// TestHealthy: a running, federated node passes every check, and the peer
// probes report the peer reachable with its clock in step.
func TestHealthy(t *testing.T) {
	t.Parallel()
	c, acme, _ := cluster(t)
	fs := run(t, acme, c.Clock.Now)
	if !doctor.Healthy(fs) {
		t.Fatalf("unhealthy: %v", failed(fs, ""))
	}
	seen := map[string]bool{}
	for _, f := range fs {
		seen[f.Check] = f.Status == doctor.OK
	}
	for _, c := range []string{"modes", "key", "config", "node", "port", "peer beta", "clock beta", "audit", "disk"} {
		if !seen[c] {
			t.Errorf("check %s missing or not ok", c)
		}
	}
}

func TestBadMode(t *testing.T) {
	t.Parallel()
	c, acme, _ := cluster(t)
	if err := os.Chmod(acme.Home, 0o777); err != nil {
		t.Fatal(err)
	}
	wantOnly(t, run(t, acme, c.Clock.Now), "modes", "writable by group or others")
	// A key others can read cannot be used either: both say to chmod it.
	if err := os.Chmod(acme.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(acme.Home, "identity.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := run(t, acme, c.Clock.Now)
	for _, check := range []string{"modes", "key"} {
		if f := failed(fs, check); len(f) != 1 || !strings.Contains(f[0].Fix, "chmod 600") {
			t.Errorf("%s: %v; want one failure whose fix is chmod 600", check, f)
		}
	}
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	c, acme, _ := cluster(t)
	f, err := os.OpenFile(filepath.Join(acme.Home, "treaty.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("limits: {max_body_bytes: -1}\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fs := run(t, acme, c.Clock.Now)
	if g := failed(fs, "config"); len(g) != 1 || !strings.Contains(g[0].Text, "treaty.yaml is not valid") {
		t.Fatalf("bad treaty.yaml not reported: %v", fs)
	}
}

func TestUnreachablePeer(t *testing.T) {
	t.Parallel()
	c, acme, beta := cluster(t)
	beta.Stop(t)
	wantOnly(t, run(t, acme, c.Clock.Now), "peer beta", "cannot be reached")
}

func TestSkewedClock(t *testing.T) {
	t.Parallel()
	c, acme, _ := cluster(t)
	ahead := func() time.Time { return c.Clock.Now().Add(2 * time.Minute) }
	wantOnly(t, run(t, acme, ahead), "clock beta", "differs")
}

func TestTamperedAudit(t *testing.T) {
	t.Parallel()
	c, acme, beta := cluster(t)
	// Entries to tamper with: the configuration changes of federation are logged.
	acme.Stop(t)
	db, err := sql.Open("sqlite", filepath.Join(acme.Home, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE entries SET leaf = replace(leaf, '"kind":"policy.changed"', '"kind":"policy.changes"') WHERE idx = 0`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered %d rows", n)
	}
	db.Close()
	fs := run(t, acme, c.Clock.Now)
	if f := failed(fs, "audit"); len(f) != 1 || !strings.Contains(f[0].Text, "does not verify") {
		t.Fatalf("tampered audit not reported: %v", fs)
	}
	_ = beta
}

// TestPeerThatDoesNotKnowUs: the address answers but the handshake fails,
// and the fix says to add this node on the peer.
func TestPeerThatDoesNotKnowUs(t *testing.T) {
	t.Parallel()
	c, acme, _ := cluster(t)
	gamma := c.Add(t, "gamma", "")
	acme.AddPeer(t, gamma)
	fs := run(t, acme, c.Clock.Now)
	f := failed(fs, "peer gamma")
	if len(f) != 1 || !strings.Contains(f[0].Text, "handshake") || !strings.Contains(f[0].Fix, "treaty peer add --name acme --addr ") ||
		!strings.Contains(f[0].Fix, " "+acme.ID.String()+";") {
		t.Fatalf("want a handshake failure at gamma with a fix in the command's syntax, naming this node's key: %v", fs)
	}
}

// TestPortTaken: with the node stopped and its port held by another
// program, doctor says so and how to find the holder.
func TestPortTaken(t *testing.T) {
	t.Parallel()
	c, acme, _ := cluster(t)
	acme.Stop(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	path := filepath.Join(acme.Home, "treaty.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(b), "listen: 127.0.0.1:0", "listen: "+ln.Addr().String(), 1)
	if fixed == string(b) {
		t.Fatalf("no listen line in %s", b)
	}
	if err := os.WriteFile(path, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := run(t, acme, c.Clock.Now)
	if f := failed(fs, "port"); len(f) != 1 || !strings.Contains(f[0].Text, "cannot be bound") || !strings.Contains(f[0].Fix, "ss -ltnp") {
		t.Fatalf("taken port not reported: %v", fs)
	}
	if len(failed(fs, "node")) != 1 {
		t.Fatalf("stopped node not reported: %v", fs)
	}
}

// TestLowDisk: free space under the audit log's mark fails; under twice the
// mark warns.
func TestLowDisk(t *testing.T) {
	t.Parallel()
	c, acme, _ := cluster(t)
	for _, tc := range []struct {
		free uint64
		want doctor.Status
	}{{100 << 20, doctor.Fail}, {700 << 20, doctor.Warn}, {5 << 30, doctor.OK}} {
		fs, err := doctor.Run(context.Background(), doctor.Options{Home: acme.Home, Now: c.Clock.Now,
			Statfs: func(string) (uint64, uint64, error) { return tc.free, 10 << 30, nil }}) // mark: 5% of 10 GiB
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Check == "disk" && f.Status != tc.want {
				t.Errorf("free %d: disk %s (%s), want %s", tc.free, f.Status, f.Text, tc.want)
			}
		}
	}
}
