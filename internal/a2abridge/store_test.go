package a2abridge

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
)

// bigTask is a finished stream's task: one artifact of n events of size bytes.
func bigTask(n, size int) *a2a.Task {
	art := &a2a.Artifact{ID: "art", Name: "events", Metadata: map[string]any{"k": "v"}}
	for range n {
		art.Parts = append(art.Parts, a2a.DataPart{Data: map[string]any{"x": strings.Repeat("a", size)}})
	}
	return &a2a.Task{ID: "t", ContextID: "c", Status: a2a.TaskStatus{State: a2a.TaskStateWorking},
		Artifacts: []*a2a.Artifact{art}, History: []*a2a.Message{a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "hi"})},
		Metadata: map[string]any{"m": "1"}}
}

// TestTaskStoreSaveCostsNoContent: a2a-go saves the task after every
// artifact update, so a store that copies the content on each save makes a
// stream of n events cost O(n²) (a peer's 1,000 events of 4 KB took 46 s of
// CPU through the bridge). A save copies the task's structure, not its
// content: saving a 4 MB task ten times allocates far less than 4 MB.
func TestTaskStoreSaveCostsNoContent(t *testing.T) {
	s := newTaskStore(4, MaxTaskBytes)
	task := bigTask(1000, 4000)
	if err := s.Save(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if err := s.Save(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Fatalf("10 saves of a 4 MB task allocated %d bytes: the content is copied on each save", got)
	}
}

// TestTaskStoreIsolates: a2a-go keeps editing a task after saving it
// (appending parts, setting an artifact's metadata) and edits what Get
// returns; neither may change what the store holds.
func TestTaskStoreIsolates(t *testing.T) {
	s := newTaskStore(4, MaxTaskBytes)
	task := bigTask(2, 1)
	if err := s.Save(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	edit := func(x *a2a.Task) {
		x.Artifacts[0].Parts = append(x.Artifacts[0].Parts, a2a.TextPart{Text: "late"})
		x.Artifacts[0].Metadata["k"] = "changed"
		x.Artifacts = append(x.Artifacts, &a2a.Artifact{ID: "new"})
		x.History = append(x.History, a2a.NewMessage(a2a.MessageRoleAgent))
		x.Metadata["m"] = "changed"
		x.Status.State = a2a.TaskStateFailed
	}
	edit(task)
	got, err := s.Get(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, x *a2a.Task) {
		t.Helper()
		if len(x.Artifacts) != 1 || len(x.Artifacts[0].Parts) != 2 || x.Artifacts[0].Metadata["k"] != "v" ||
			len(x.History) != 1 || x.Metadata["m"] != "1" || x.Status.State != a2a.TaskStateWorking {
			t.Fatalf("%s: the stored task changed: %+v", what, x)
		}
	}
	check("after editing the saved task", got)
	edit(got)
	again, _ := s.Get(t.Context(), "t")
	check("after editing a task Get returned", again)
}

// TestTaskStoreExpiresEndedTasks: an ended task is kept for TaskRetention,
// then forgotten (tasks/get says not found and its bytes are freed); a
// running task is never forgotten for its age.
func TestTaskStoreExpiresEndedTasks(t *testing.T) {
	s := newTaskStore(8, MaxTaskBytes)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	done := bigTask(1, 10)
	done.Status.State = a2a.TaskStateCompleted
	running := bigTask(1, 10)
	running.ID = "r"
	for _, task := range []*a2a.Task{done, running} {
		if err := s.Save(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(TaskRetention)
	if _, err := s.Get(t.Context(), "t"); err != nil {
		t.Fatalf("an ended task was forgotten before TaskRetention: %v", err)
	}
	now = now.Add(time.Second)
	if err := s.admit(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), "t"); !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("an ended task past TaskRetention: %v, want not found", err)
	}
	if _, err := s.Get(t.Context(), "r"); err != nil {
		t.Fatalf("a running task was forgotten: %v", err)
	}
	s.mu.Lock()
	n, b := len(s.tasks), s.bytes
	s.mu.Unlock()
	if n != 1 || b != s.tasks["r"].bytes {
		t.Fatalf("%d tasks, %d bytes kept after expiry", n, b)
	}
}
