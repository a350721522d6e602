package backend

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as a worker when TREATY_TEST_WORKER is set: it
// answers request lines, and misbehaves when the input asks it to.
func TestMain(m *testing.M) {
	if os.Getenv("TREATY_TEST_WORKER") == "1" {
		serveTestWorker()
		os.Exit(0)
	}
	code := m.Run()
	removeMCPServer()
	os.Exit(code)
}

func serveTestWorker() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(nil, 8<<20)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	reply := func(s string) {
		mu.Lock()
		out.WriteString(s + "\n")
		out.Flush()
		mu.Unlock()
	}
	for sc.Scan() {
		var req struct {
			ID    uint64
			Peer  string
			Input struct {
				Do  string
				N   int
				Dir string
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			os.Exit(3)
		}
		switch req.Input.Do {
		case "crash":
			fmt.Fprintln(os.Stderr, "worker: crashing on purpose")
			os.Exit(2)
		case "garbage":
			reply("this is not json")
		case "big":
			reply(fmt.Sprintf(`{"id":%d,"output":"%s"}`, req.ID, strings.Repeat("a", req.Input.N)))
		case "hang":
			// never answers this one
		case "fail":
			reply(fmt.Sprintf(`{"id":%d,"error":"secret detail"}`, req.ID))
		case "gate": // tell the test it has the call, answer once it may
			os.WriteFile(filepath.Join(req.Input.Dir, "got"), nil, 0o600)
			for {
				if _, err := os.Stat(filepath.Join(req.Input.Dir, "go")); err == nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			reply(fmt.Sprintf(`{"id":%d,"output":"late"}`, req.ID))
		case "pid":
			reply(fmt.Sprintf(`{"id":%d,"output":%d}`, req.ID, os.Getpid()))
		default:
			reply(fmt.Sprintf(`{"id":%d,"output":{"peer":%q,"n":%d}}`, req.ID, req.Peer, req.Input.N))
		}
	}
}

func testWorker(t *testing.T, timeout time.Duration) *Worker {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{Argv: []string{exe}, Env: []string{"TREATY_TEST_WORKER=1"}, Timeout: timeout, MaxOutput: 1000}
	t.Cleanup(w.Close)
	return w
}

func failReason(t *testing.T, err error) string {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want a *Failure", err)
	}
	return f.Reason
}

func pidOf(t *testing.T, w *Worker) string {
	t.Helper()
	out, err := w.Call(t.Context(), inv(t, `{"do":"pid"}`))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// callUntil retries a call until it succeeds (a worker in restart backoff
// refuses calls for a moment), within a deadline.
func callUntil(t *testing.T, w *Worker, input string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := w.Call(t.Context(), inv(t, input))
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker did not come back: %v", err)
		}
	}
}

func TestWorkerCallsConcurrently(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	w.Workers = 2
	in := inv(t, "")
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for j := range 10 {
				n := i*100 + j
				c := in
				c.Input = fmt.Appendf(nil, `{"n":%d}`, n)
				out, err := w.Call(t.Context(), c)
				want := fmt.Sprintf(`{"peer":%q,"n":%d}`, in.Peer.String(), n)
				if err != nil || string(out) != want {
					t.Errorf("call %d: %s, %v; want %s", n, out, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestWorkerRestartsAfterCrash(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	before := pidOf(t, w)
	_, err := w.Call(t.Context(), inv(t, `{"do":"crash"}`))
	if r := failReason(t, err); r != "worker died" {
		t.Fatalf("reason = %q", r)
	}
	callUntil(t, w, `{}`)
	if after := pidOf(t, w); after == before {
		t.Fatalf("worker pid %s unchanged after a crash", after)
	}
}

func TestWorkerKilledOnBadLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, input, reason string }{
		{"garbage", `{"do":"garbage"}`, "worker died"},
		{"oversized line", `{"do":"big","n":20000}`, "output exceeds limit max_output_bytes=1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := testWorker(t, 10*time.Second)
			before := pidOf(t, w)
			_, err := w.Call(t.Context(), inv(t, tc.input))
			if r := failReason(t, err); r != tc.reason {
				t.Fatalf("reason = %q, want %q", r, tc.reason)
			}
			callUntil(t, w, `{}`)
			if after := pidOf(t, w); after == before {
				t.Fatal("worker not restarted after a bad line")
			}
		})
	}
}

func TestWorkerOutputOverLimitFailsOnlyThatCall(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	before := pidOf(t, w)
	_, err := w.Call(t.Context(), inv(t, `{"do":"big","n":1500}`)) // over 1000, within the line slack
	if r := failReason(t, err); r != "output exceeds limit max_output_bytes=1000" {
		t.Fatalf("reason = %q", r)
	}
	if after := pidOf(t, w); after != before {
		t.Fatal("worker restarted for an answer it framed correctly")
	}
}

func TestWorkerErrorHidesDetail(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	_, err := w.Call(t.Context(), inv(t, `{"do":"fail"}`))
	if r := failReason(t, err); r != "worker reported an error" || strings.Contains(r, "secret") {
		t.Fatalf("reason = %q", r)
	}
}

// A call that times out fails alone while the worker keeps answering others;
// a worker that answers nothing within a timeout is killed as hung.
func TestWorkerTimeout(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 300*time.Millisecond)
	before := pidOf(t, w)
	var wg sync.WaitGroup
	var hungErr error
	wg.Go(func() { _, hungErr = w.Call(t.Context(), inv(t, `{"do":"hang"}`)) })
	// Keep the worker answering while the hung call waits.
	stop := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(stop) {
		if _, err := w.Call(t.Context(), inv(t, `{}`)); err != nil {
			t.Fatalf("a call beside a hung one failed: %v", err)
		}
	}
	wg.Wait()
	if r := failReason(t, hungErr); r != "timed out after 300ms" {
		t.Fatalf("reason = %q", r)
	}
	if after := pidOf(t, w); after != before {
		t.Fatal("a busy worker was killed for one slow call")
	}

	// Alone, the hung call finds the worker silent: it is killed and replaced.
	_, err := w.Call(t.Context(), inv(t, `{"do":"hang"}`))
	if r := failReason(t, err); r != "timed out after 300ms" {
		t.Fatalf("reason = %q", r)
	}
	callUntil(t, w, `{}`)
	if after := pidOf(t, w); after == before {
		t.Fatal("a silent worker was not replaced")
	}
}

func TestWorkerEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("TREATY_TEST_SECRET", "AKIA-not-for-workers")
	w := &Worker{Argv: []string{"/bin/sh", "-c", `read line; printf '{"id":1,"output":"%s"}\n' "$TREATY_TEST_SECRET$TREATY_PEER"; cat >/dev/null`}, Timeout: 5 * time.Second}
	defer w.Close()
	out, err := w.Call(t.Context(), inv(t, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `""` {
		t.Fatalf("worker saw %s of the node's environment", out)
	}
}

func TestWorkerStopsWhenIdle(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	w.idleAfter = 100 * time.Millisecond
	before := pidOf(t, w)
	slot := w.slots[0]
	slot.mu.Lock()
	p := slot.proc
	slot.mu.Unlock()
	select {
	case <-p.dead:
	case <-time.After(10 * time.Second):
		t.Fatal("idle worker still running after 10s")
	}
	// Stopping for idleness is no failure: the next call starts a worker at once.
	if after := pidOf(t, w); after == before {
		t.Fatal("same pid after an idle stop")
	}
}

// A worker that dies at once is not restarted in a tight loop: after the first
// quick restart, calls fail with "worker restarting" until the backoff passes.
func TestWorkerRestartBackoff(t *testing.T) {
	t.Parallel()
	starts := filepath.Join(t.TempDir(), "starts")
	w := &Worker{Argv: script(t, `echo x >>`+starts+`; exit 1`), Timeout: 5 * time.Second}
	defer w.Close()
	reasons := map[string]int{}
	const calls = 30
	for range calls {
		_, err := w.Call(t.Context(), inv(t, `{}`))
		reasons[failReason(t, err)]++
	}
	b, err := os.ReadFile(starts)
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(b), "x")
	if reasons["worker restarting"] == 0 || n >= calls {
		t.Fatalf("%d calls to a dying worker: %d starts, reasons %v; want backoff to refuse some", calls, n, reasons)
	}
}

func TestWorkerPoolSpreadsCalls(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	w.Workers = 2
	if a, b := pidOf(t, w), pidOf(t, w); a == b {
		t.Fatalf("two workers, consecutive calls both on pid %s", a)
	}
}

// Input with newlines (pretty-printed JSON) still travels as one line.
func TestWorkerMultilineInput(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	in := inv(t, "{\n  \"n\": 5\n}\n")
	out, err := w.Call(t.Context(), in)
	if want := fmt.Sprintf(`{"peer":%q,"n":5}`, in.Peer.String()); err != nil || string(out) != want {
		t.Fatalf("out = %s, %v; want %s", out, err, want)
	}
}

// A request line cut short by the timeout (the worker stopped reading) loses
// the framing: the worker is killed even though it still writes.
func TestWorkerKilledOnPartialWrite(t *testing.T) {
	t.Parallel()
	w := &Worker{Argv: script(t, `while :; do echo '{"id":999999999,"output":1}'; sleep 0.05; done`), Timeout: 500 * time.Millisecond}
	defer w.Close()
	big := `{"s":"` + strings.Repeat("a", 1<<20) + `"}`
	_, err := w.Call(t.Context(), inv(t, big))
	if r := failReason(t, err); r != "timed out after 500ms" {
		t.Fatalf("reason = %q", r)
	}
	w.slots[0].mu.Lock()
	p := w.slots[0].proc
	w.slots[0].mu.Unlock()
	select {
	case <-p.dead:
	case <-time.After(10 * time.Second):
		t.Fatal("worker with half a request on its stdin still running")
	}
}

// An answer longer than the read buffer (64 KiB) but within the limit arrives
// whole.
func TestWorkerLongAnswer(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	w.MaxOutput = 300 << 10
	out, err := w.Call(t.Context(), inv(t, `{"do":"big","n":200000}`))
	if err != nil || len(out) != 200002 || strings.Trim(string(out), `"a`) != "" {
		t.Fatalf("long answer: %d bytes, %v", len(out), err)
	}
}
