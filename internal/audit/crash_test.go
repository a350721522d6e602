package audit

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	crashDirEnv   = "AUDIT_CRASH_DIR"
	crashRoundEnv = "AUDIT_CRASH_ROUND"
)

// TestCrashChild is the process TestCrashSafety kills. It appends from eight
// goroutines and prints "ack INDEX CAPABILITY" after each Append returns.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashSafety")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	clock := newStepClock()
	clock.base = clock.base.Add(time.Duration(round) * time.Hour)
	l, err := Open(context.Background(), Config{Path: filepath.Join(dir, "audit.db"), Identity: testKey(t, 1), Now: clock.Now})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				e := sampleEntry(i)
				e.Capability = fmt.Sprintf("r%d-g%d-%d", round, g, i)
				idx, err := l.Append(ctx, e)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				mu.Lock()
				// One write(2) per line: once it returns, the line is in the pipe
				// and survives the kill.
				os.Stdout.WriteString("ack " + strconv.FormatUint(idx, 10) + " " + e.Capability + "\n")
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashSafety kills a process that is appending with SIGKILL at a random
// moment, several times over the same file, and checks after each kill that
// the log opens, verifies, and holds every entry whose Append had returned.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := uint64(20251128)
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	key := testKey(t, 1)
	acked := map[uint64]string{}
	for round := range 4 {
		killAfter := 0 // round 0: kill at once, maybe while the file is being created
		if round > 0 {
			killAfter = 20 + rng.IntN(400)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		kill := func() {
			if !killed {
				killed = true
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		if killAfter == 0 {
			kill()
		}
		n := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue
			}
			idx, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("child printed %q", sc.Text())
			}
			if prev, dup := acked[idx]; dup {
				t.Fatalf("index %d acknowledged twice: %s and %s", idx, prev, f[2])
			}
			acked[idx] = f[2]
			if n++; n >= killAfter {
				kill()
			}
		}
		err = cmd.Wait()
		if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: child ended on its own after %d acks: %v\n%s", round, n, err, stderr.String())
		}
		t.Logf("round %d: killed after %d acks", round, n)

		l, err := Open(t.Context(), Config{Path: filepath.Join(dir, "audit.db"), Identity: key, TailCheck: -1})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for idx, cap := range acked {
			e, err := l.Get(t.Context(), idx)
			if err != nil {
				t.Fatalf("round %d: acknowledged entry %d lost: %v", round, idx, err)
			}
			if e.Capability != cap {
				t.Fatalf("round %d: entry %d holds %q, acknowledged %q", round, idx, e.Capability, cap)
			}
		}
		cp := mustCheckpoint(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		res, err := Verify(t.Context(), filepath.Join(dir, "audit.db"), key.Public())
		if err != nil {
			t.Fatalf("round %d: verify after SIGKILL: %v", round, err)
		}
		if res.Entries != cp.Size || res.Entries < uint64(len(acked)) {
			t.Fatalf("round %d: %v, checkpoint %d, %d acknowledged", round, res, cp.Size, len(acked))
		}
	}
	if len(acked) == 0 {
		t.Fatal("no entry was ever acknowledged")
	}
}
