package backend

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
)

// A2ATestAgent builds the test A2A agent (./a2atest, without -race: it
// stands for a real agent, a separate process), runs it with args and
// returns its base URL. The process is killed when the test ends.
func A2ATestAgent(t testing.TB, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "a2atest")
	if b, err := exec.Command("go", "build", "-o", bin, "github.com/treaty-dev/treaty/internal/backend/a2atest").CombinedOutput(); err != nil {
		t.Fatalf("building a2atest: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("a2atest said nothing: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestA2ABackend(t *testing.T) {
	url := A2ATestAgent(t)
	call := func(skill, input string, timeout time.Duration) (string, error) {
		b := &A2A{URL: url, Skill: skill, Timeout: timeout}
		out, err := b.Call(t.Context(), Invocation{Input: []byte(input)})
		return string(out), err
	}
	t.Run("completed task", func(t *testing.T) {
		out, err := call("echo", `{"msg":"hi"}`, 10*time.Second)
		var got struct {
			Msg      string   `json:"msg"`
			PID      int      `json:"pid"`
			Metadata []string `json:"metadata"`
		}
		if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Msg != "hi" || got.PID == 0 ||
			strings.Join(got.Metadata, ",") != "skill" {
			t.Fatalf("echo: %s %v (the agent must get the input and the skill, nothing else)", out, err)
		}
	})
	t.Run("non-object input is JSON text", func(t *testing.T) {
		out, err := call("echo", `[1,2]`, 10*time.Second)
		if err != nil || !strings.Contains(out, `"text":"[1,2]"`) {
			t.Fatalf("echo array: %s %v", out, err)
		}
	})
	t.Run("message", func(t *testing.T) {
		if out, err := call("hello", `{}`, 10*time.Second); err != nil || out != `{"text":"hello"}` {
			t.Fatalf("hello: %s %v", out, err)
		}
	})
	for skill, want := range map[string]string{
		"fail":   "a2a task failed",
		"reject": "a2a task rejected",
		"ask":    "a2a agent asked for more (input-required)",
	} {
		t.Run(skill, func(t *testing.T) {
			_, err := call(skill, `{}`, 10*time.Second)
			var f *Failure
			if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, want) {
				t.Fatalf("%s: %v, want a failure %q", skill, err, want)
			}
			if strings.Contains(f.Reason, "secret") {
				t.Fatalf("the agent's message reached the reason the peer sees: %q", f.Reason)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		_, err := call("hang", `{}`, 300*time.Millisecond)
		var f *Failure
		if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "timed out after 300ms") || time.Since(start) > 5*time.Second {
			t.Fatalf("hang: %v after %v", err, time.Since(start))
		}
	})
	t.Run("unknown skill", func(t *testing.T) {
		_, err := call("nope", `{}`, 10*time.Second)
		var f *Failure
		if !errors.As(err, &f) || f.Reason != "the a2a agent has no such skill" {
			t.Fatalf("nope: %v", err)
		}
	})
	t.Run("stream", func(t *testing.T) {
		b := &A2A{URL: url, Skill: "ticks", Timeout: 10 * time.Second}
		var events []string
		err := b.Stream(t.Context(), Invocation{Input: []byte(`{}`)}, func(ev []byte) error {
			events = append(events, string(ev))
			return nil
		})
		if err != nil || strings.Join(events, " ") != `{"tick":1} {"tick":2} {"tick":3}` {
			t.Fatalf("ticks: %v %v", events, err)
		}
		b.Skill = "fail"
		if err := b.Stream(t.Context(), Invocation{Input: []byte(`{}`)}, func([]byte) error { return nil }); err == nil ||
			!strings.Contains(err.Error(), "a2a task failed") {
			t.Fatalf("failed stream: %v", err)
		}
	})
	t.Run("description", func(t *testing.T) {
		d, err := (&A2A{URL: url, Skill: "echo", Timeout: 10 * time.Second}).Describe(t.Context())
		if err != nil || d != "the echo skill" {
			t.Fatalf("describe: %q %v", d, err)
		}
	})
}

// TestA2ACardPointingElsewhere: a card whose endpoint is on another host is
// refused before any input is sent.
func TestA2ACardPointingElsewhere(t *testing.T) {
	url := A2ATestAgent(t, "-card-host", "192.0.2.1")
	_, err := (&A2A{URL: url, Skill: "echo", Timeout: 10 * time.Second}).Call(t.Context(), Invocation{Input: []byte(`{}`)})
	var f *Failure
	if !errors.As(err, &f) || f.Reason != "the a2a agent's card points elsewhere" {
		t.Fatalf("lying card: %v", err)
	}
}

// TestA2AOversizedAnswer: an agent that answers without end is cut at the
// bound, not read into memory.
func TestA2AOversizedAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"name":"big","url":%q,"preferredTransport":"JSONRPC","skills":[],"description":"`, base+"/")
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 64 { // 4 MiB, more than the bound for MaxOutput 64 KiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, err = (&A2A{URL: base, Skill: "x", Timeout: 10 * time.Second, MaxOutput: 64 << 10}).Call(t.Context(), Invocation{Input: []byte(`{}`)})
	if !errors.Is(err, errBodyTooLarge) {
		t.Fatalf("oversized card: %v", err)
	}
}

func TestTaskOutcome(t *testing.T) {
	msg := func(parts ...a2a.Part) *a2a.Message { return a2a.NewMessage(a2a.MessageRoleAgent, parts...) }
	for _, c := range []struct {
		name string
		task *a2a.Task
		out  string
		err  string
	}{
		{"data artifact", &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCompleted},
			Artifacts: []*a2a.Artifact{{Parts: a2a.ContentParts{a2a.DataPart{Data: map[string]any{"a": 1.0}}}}}}, `{"a":1}`, ""},
		{"text artifacts", &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCompleted},
			Artifacts: []*a2a.Artifact{{Parts: a2a.ContentParts{a2a.TextPart{Text: "he"}}}, {Parts: a2a.ContentParts{a2a.TextPart{Text: "llo"}}}}}, `{"text":"hello"}`, ""},
		{"mixed parts", &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCompleted},
			Artifacts: []*a2a.Artifact{{Parts: a2a.ContentParts{a2a.TextPart{Text: "x"}, a2a.DataPart{Data: map[string]any{}}}}}},
			`{"parts":[{"kind":"text","text":"x"},{"kind":"data","data":{}}]}`, ""},
		{"status message only", &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCompleted, Message: msg(a2a.TextPart{Text: `{"ok":true}`})}}, `{"ok":true}`, ""},
		{"nothing", &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCompleted}}, `{}`, ""},
		{"canceled", &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCanceled}}, "", "a2a task canceled"},
		{"auth", &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateAuthRequired}}, "", "a2a agent asked for more (auth-required)"},
		{"unknown", &a2a.Task{Status: a2a.TaskStatus{State: "weird"}}, "", `a2a task in unexpected state "weird"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := taskOutcome(c.task)
			if c.err != "" {
				var f *Failure
				if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || string(out) != c.out {
				t.Fatalf("out = %s %v, want %s", out, err, c.out)
			}
		})
	}
}

// FuzzA2AAnswer: whatever an agent answers, mapping it never panics and an
// accepted answer is one JSON value.
func FuzzA2AAnswer(f *testing.F) {
	for _, s := range []string{
		`{"kind":"task","id":"t","contextId":"c","status":{"state":"completed"},"artifacts":[{"artifactId":"a","parts":[{"kind":"data","data":{"a":1}}]}]}`,
		`{"kind":"task","id":"t","contextId":"c","status":{"state":"failed","message":{"kind":"message","messageId":"m","role":"agent","parts":[{"kind":"text","text":"x"}]}}}`,
		`{"kind":"message","messageId":"m","role":"agent","parts":[{"kind":"text","text":"{\"a\":"},{"kind":"file","file":{"uri":"file:///x"}}]}`,
		`{"kind":"task","id":"t","contextId":"c","status":{"state":"completed"},"artifacts":[null,{"artifactId":"a","parts":[]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := a2a.UnmarshalEventJSON(b)
		if err != nil {
			return
		}
		var out []byte
		switch ev := ev.(type) {
		case *a2a.Task:
			out, err = taskOutcome(ev)
		case *a2a.Message:
			out, err = outputOf(nil, ev)
		default:
			return
		}
		if err == nil && !json.Valid(out) {
			t.Fatalf("accepted %q", out)
		}
	})
}

// slowAgent answers message/send with a working task, as an agent that does
// not wait for the end may, and tasks/get with working until done polls,
// then with the finished task; it records the methods it was asked.
func slowAgent(t *testing.T, done int) (url string, methods func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	var mu sync.Mutex
	var seen []string
	gets := 0
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, `{"name":"slow","url":%q,"preferredTransport":"JSONRPC","skills":[{"id":"s","name":"s","description":"slow","tags":[]}]}`, base+"/")
			return
		}
		var req struct {
			ID     any    `json:"id"`
			Method string `json:"method"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		seen = append(seen, req.Method)
		state := "working"
		if req.Method == "tasks/get" {
			if gets++; done > 0 && gets >= done {
				state = "completed"
			}
		}
		if req.Method == "tasks/cancel" {
			state = "canceled"
		}
		mu.Unlock()
		id, _ := json.Marshal(req.ID)
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"kind":"task","id":"t1","contextId":"c1","status":{"state":%q},`+
			`"artifacts":[{"artifactId":"a","parts":[{"kind":"data","data":{"polls":%d}}]}]}}`, id, state, gets)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return base, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// TestA2AWorkingTask: a task the agent leaves working is polled until it
// completes; one that never does is cancelled at the agent when the call's
// timeout passes.
func TestA2AWorkingTask(t *testing.T) {
	url, methods := slowAgent(t, 3)
	out, err := (&A2A{URL: url, Skill: "s", Timeout: 10 * time.Second}).Call(t.Context(), Invocation{Input: []byte(`{}`)})
	if err != nil || string(out) != `{"polls":3}` || strings.Join(methods(), ",") != "message/send,tasks/get,tasks/get,tasks/get" {
		t.Fatalf("polled: %s %v after %v", out, err, methods())
	}

	url, methods = slowAgent(t, 0)
	_, err = (&A2A{URL: url, Skill: "s", Timeout: 300 * time.Millisecond}).Call(t.Context(), Invocation{Input: []byte(`{}`)})
	var f *Failure
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "timed out after 300ms") {
		t.Fatalf("never done: %v", err)
	}
	if m := methods(); m[len(m)-1] != "tasks/cancel" {
		t.Fatalf("the abandoned task was not cancelled: %v", m)
	}
}

// A body of exactly the bound is whole; one byte more is refused.
func TestCappedAtTheBound(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		err  error
	}{
		{"under", "abc", nil},
		{"exactly", "abcd", nil},
		{"one over", "abcde", errBodyTooLarge},
	} {
		var cut atomic.Bool
		got, err := io.ReadAll(&capped{rc: io.NopCloser(iotest.OneByteReader(strings.NewReader(c.body))), left: 4, cut: &cut})
		if !errors.Is(err, c.err) || (err == nil && string(got) != c.body) {
			t.Errorf("%s: %q, %v; want %v", c.name, got, err, c.err)
		}
		if cut.Load() != (c.err != nil) {
			t.Errorf("%s: cut = %v", c.name, cut.Load())
		}
	}
}
