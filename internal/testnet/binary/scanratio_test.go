package binary

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/testnet"
)

// scanCPU runs `treaty scan` on in and returns the CPU time (user and system)
// of the process, which the machine's other load does not inflate as it does
// wall time.
func scanCPU(t *testing.T, bin, home string, in []byte) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "scan", "--home", home)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	cmd.Stdin = bytes.NewReader(in)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// Every address is a finding: the scan's verdict is not pass, so it need
	// not exit 0; it must exit, and name the findings.
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("treaty scan: %v", err)
	}
	if !strings.Contains(errOut.String(), "email") {
		t.Fatalf("treaty scan found no email in %d bytes; stderr %.300q", len(in), errOut.String())
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// Issue 10, defect 2, as the issue measured it: `treaty scan` of 1 MB of
// a@b.co costs at most 12 times a scan of 64 KB (it took 158 s when finding
// positions was quadratic). The process pays startup and rule compilation
// once per run, as an operator's scan does; the in-process superlinearity
// check is internal/sanitize's TestSanitizeColdScanRatio.
func TestScanProcessRatio(t *testing.T) {
	bin := treatyBin(t)
	n := testnet.Init(t, bin, "acme")
	small := []byte(strings.Repeat("a@b.co ", (64<<10)/7))
	big := []byte(strings.Repeat("a@b.co ", (1<<20)/7))
	best := func(in []byte) time.Duration {
		d := time.Duration(1<<63 - 1)
		for range 2 {
			d = min(d, scanCPU(t, bin, n.Home, in))
		}
		return d
	}
	ts, tb := best(small), best(big)
	r := float64(tb) / float64(ts)
	t.Logf("treaty scan CPU: 64 KB %v  1 MB %v  ratio %.1f", ts, tb, r)
	if r > 12 {
		t.Errorf("treaty scan of 1 MB took %.1fx the CPU time of 64 KB, want <= 12", r)
	}
}
