package a2abridge

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
)

// sizedTask is a task in state st holding about n bytes in one data part.
func sizedTask(id a2a.TaskID, st a2a.TaskState, n int) *a2a.Task {
	art := &a2a.Artifact{ID: "art", Parts: []a2a.Part{a2a.DataPart{Data: map[string]any{"x": strings.Repeat("a", n)}}}}
	return &a2a.Task{ID: id, ContextID: "c", Status: a2a.TaskStatus{State: st}, Artifacts: []*a2a.Artifact{art}}
}

func (s *taskStore) held() (ids []a2a.TaskID, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]a2a.TaskID(nil), s.order...), s.bytes
}

// TestTaskStoreBoundsBytes: past its byte bound the store forgets the
// oldest ended tasks first, never a running one, and refuses a new task
// (ErrTasksFull) while running tasks alone hold the bound. Before, only the
// count was bounded: 1,024 tasks of up to 6 MiB each, about 6 GiB.
func TestTaskStoreBoundsBytes(t *testing.T) {
	const kib = 1 << 10
	s := newTaskStore(MaxTasks, 10*kib)
	save := func(id a2a.TaskID, st a2a.TaskState, n int) {
		t.Helper()
		if err := s.Save(t.Context(), sizedTask(id, st, n)); err != nil {
			t.Fatal(err)
		}
	}
	save("run1", a2a.TaskStateWorking, 3*kib)
	save("done1", a2a.TaskStateCompleted, 3*kib)
	save("done2", a2a.TaskStateFailed, 3*kib)
	if err := s.admit(); err != nil {
		t.Fatalf("admit under the bound: %v", err)
	}
	save("done3", a2a.TaskStateCompleted, 3*kib) // over: done1, the oldest ended, goes
	ids, bytes := s.held()
	if want := []a2a.TaskID{"run1", "done2", "done3"}; !slices.Equal(ids, want) || bytes > 10*kib {
		t.Fatalf("held %v (%d bytes), want %v within %d", ids, bytes, want, 10*kib)
	}
	if _, err := s.Get(t.Context(), "done1"); !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("the oldest ended task is kept: %v", err)
	}
	// Running tasks fill the bound: ended ones go, then new ones are refused.
	save("run2", a2a.TaskStateWorking, 4*kib)
	save("run3", a2a.TaskStateWorking, 4*kib)
	ids, _ = s.held()
	if want := []a2a.TaskID{"run1", "run2", "run3"}; !slices.Equal(ids, want) {
		t.Fatalf("held %v, want only the running %v", ids, want)
	}
	err := s.admit()
	if !errors.Is(err, ErrTasksFull) || !errors.Is(err, a2a.ErrServerError) {
		t.Fatalf("admit with running tasks over the bound: %v, want ErrTasksFull", err)
	}
	// A running task that ends makes room.
	save("run2", a2a.TaskStateCompleted, 4*kib)
	if err := s.admit(); err != nil {
		t.Fatalf("admit once a task ended: %v", err)
	}
	if ids, bytes := s.held(); !slices.Equal(ids, []a2a.TaskID{"run1", "run3"}) || bytes > 10*kib {
		t.Fatalf("held %v (%d bytes) after making room", ids, bytes)
	}
}

// TestTaskStoreCountsIncrementally: a stream's task, saved after each event
// as a2a-go saves it (parts appended to the same artifact), is counted as
// many bytes as the finished task saved once, and a save measures only what
// is new.
func TestTaskStoreCountsIncrementally(t *testing.T) {
	task := bigTask(0, 0)
	task.Artifacts[0].Parts = nil
	s := newTaskStore(4, MaxTaskBytes)
	for range 200 {
		task.Artifacts[0].Parts = append(task.Artifacts[0].Parts, a2a.DataPart{Data: map[string]any{"x": strings.Repeat("b", 500)}})
		if err := s.Save(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	_, got := s.held()
	once := newTaskStore(4, MaxTaskBytes)
	once.Save(t.Context(), cloneTask(task))
	_, want := once.held()
	if got != want || got < 200*500 {
		t.Fatalf("counted %d bytes over 200 saves, %d in one; want equal and at least %d", got, want, 200*500)
	}
	// Replacing the artifact (a new one with the same ID) is measured afresh.
	task.Artifacts[0] = &a2a.Artifact{ID: "art", Parts: []a2a.Part{a2a.TextPart{Text: "short"}}}
	s.Save(t.Context(), task)
	if _, after := s.held(); after >= got/100 {
		t.Fatalf("after replacing the artifact %d bytes, was %d", after, got)
	}
}

// TestTasksRefusedWhenFull: through the bridge, a new task is refused with
// ErrTasksFull's text while a running task holds the byte bound, and served
// again once it ended (its bytes forgotten for the new one).
func TestTasksRefusedWhenFull(t *testing.T) {
	g := &gatedNode{fakeNode: newFake(), started: make(chan struct{}, 1), gate: make(chan struct{})}
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	b, err := New(Options{Node: g, URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	b.tasks.maxBytes = 1 // any running task fills it; set before serving
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h, err = b.HTTPHandler(testToken); err != nil {
		t.Fatal(err)
	}
	c := clientFor(t, srv.URL)
	noWait, wait := false, true
	sendWith := func(blocking *bool) (a2a.SendMessageResult, error) {
		msg := a2a.NewMessage(a2a.MessageRoleUser)
		msg.Metadata = map[string]any{MetaSkill: "globex__echo"}
		return c.SendMessage(t.Context(), &a2a.MessageSendParams{Message: msg, Config: &a2a.MessageSendConfig{Blocking: blocking}})
	}
	if _, err := sendWith(&noWait); err != nil {
		t.Fatalf("first task: %v", err)
	}
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first task did not start within 10 s")
	}
	if _, err := sendWith(&noWait); err == nil || !strings.Contains(err.Error(), "none has ended") {
		t.Fatalf("a task while a running one holds the bound: %v, want ErrTasksFull", err)
	}
	select {
	case <-g.started:
		t.Fatal("the refused task called the node")
	default:
	}
	close(g.gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := sendWith(&wait)
		if task, ok := res.(*a2a.Task); err == nil && ok && task.Status.State == a2a.TaskStateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served again within 10 s after the running task ended: %v", err)
		}
	}
}
