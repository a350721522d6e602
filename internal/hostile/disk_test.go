package hostile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/testnet"

	"go.yaml.in/yaml/v3"
)

const (
	// highWaterWithin: the victim notices the mark (it measures every 250 ms)
	// and, once space returns, resumes by itself within this.
	highWaterWithin = 5 * time.Second
)

// TestDiskHighWater is finding 5: with the disk nearly full the victim refuses
// new calls at stage audit instead of writing until the disk is full, stays up,
// and resumes by itself once space returns, without a restart.
func TestDiskHighWater(t *testing.T) {
	skipShort(t)
	// The victim's audit.min_free_bytes is set margin below the free space at
	// start, so other writers on the machine do not trip it, and the log
	// resumes only 1/32 of the mark above it (hysteresis): margin is larger.
	// The test then takes twice margin from the filesystem (fallocate: instant,
	// no data written), putting free space under the mark.
	var minFree, margin int64
	s := newScene(t, func(v *testnet.Node) {
		free := int64(freeBytes(t, v.Home))
		margin = max(2<<30, free/16)
		minFree = free - margin
		setYAML(t, filepath.Join(v.Home, "treaty.yaml"), "audit", "min_free_bytes", minFree)
	})
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), probeMax)
		defer cancel()
		_, err := s.legit.Call(ctx, "victim", "echo", json.RawMessage(`{"disk":1}`))
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("call before the disk fills: %v", err)
	}
	m := s.watch(t)

	filler := filepath.Join(filepath.Dir(s.v.Home), "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filler)
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, 2*margin); err != nil {
		f.Close()
		t.Skipf("fallocate %d bytes: %v", 2*margin, err)
	}
	f.Close()
	t.Logf("free %d bytes, victim's min_free_bytes %d", freeBytes(t, s.v.Home), minFree)

	var refusal error
	testnet.Eventually(t, highWaterWithin, func() error {
		err := call()
		if err == nil {
			return fmt.Errorf("call still served with %d bytes free (min_free_bytes %d)", freeBytes(t, s.v.Home), minFree)
		}
		if !strings.Contains(err.Error(), "audit") {
			return fmt.Errorf("call refused for another reason: %w", err)
		}
		refusal = err
		return nil
	})
	t.Logf("at the high-water mark: %v", refusal)
	// While over the mark, refusals are quick and the node stays up.
	for range 5 {
		t0 := time.Now()
		if err := call(); err == nil {
			t.Errorf("call served over the high-water mark")
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("refusal over the high-water mark took %v", d)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, highWaterWithin, call)
	u := m.end(t)
	t.Logf("victim: %v", u)
	if u.maxFDs > maxVictimFDs {
		t.Errorf("victim held %d descriptors, bound %d", u.maxFDs, maxVictimFDs)
	}
	if pidOf(t, s.v) != s.vPID {
		t.Errorf("victim was restarted")
	}
	// The log says when it stopped and when it resumed.
	out := s.v.Must(t, "audit", "ls", "--kind", "audit.high_water")
	if !strings.Contains(out, "refusing") || !strings.Contains(out, "resumed") {
		t.Errorf("audit ls --kind audit.high_water:\n%s\nwant a refusing and a resumed entry", out)
	}
	s.recovers(t)
}

// freeBytes is the space an unprivileged process may still write where dir is.
func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// setYAML sets section.key in a treaty.yaml.
func setYAML(t *testing.T, path, section, key string, value any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	sec, _ := doc[section].(map[string]any)
	if sec == nil {
		sec = map[string]any{}
	}
	sec[key] = value
	doc[section] = sec
	if b, err = yaml.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
