package a2abridge

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
)

// ErrTasksFull is wrapped by the refusal of a new task while the tasks kept
// hold MaxTaskBytes and none of them has ended (only ended tasks are
// forgotten to make room).
var ErrTasksFull = fmt.Errorf("a2abridge: the tasks kept hold %d MiB, the most, and none has ended; retry when one ends", MaxTaskBytes>>20)

// taskStore keeps the newest maxTasks tasks, holding at most about maxBytes,
// in memory for tasks/get and resubscription, an ended one for TaskRetention
// at most; a2a-go's own store keeps every task for ever. Past maxBytes the oldest ended tasks are forgotten first; a
// running task is never forgotten for its bytes, and a new one is refused
// (admit) while running tasks alone fill the bound.
//
// a2a-go edits a task after saving it and edits what Get returns, so both
// copy the task's structure (the slices and maps a2a-go appends to or sets),
// not its content: a2a-go saves after every artifact update, and copying the
// content each time would make a stream of n events cost O(n²). For the
// same reason a task's bytes are counted incrementally (see sizer).
type taskStore struct {
	maxTasks, maxBytes int
	keep               time.Duration    // how long an ended task is kept
	now                func() time.Time // tests: time.Now otherwise

	mu    sync.Mutex
	tasks map[a2a.TaskID]*storedTask
	order []a2a.TaskID // insertion order, oldest first
	bytes int          // the sum of the tasks' bytes
}

type storedTask struct {
	task  *a2a.Task
	bytes int
	sizer *sizer    // nil once the task has ended: it is not saved again
	ended time.Time // when it ended; zero while it runs
}

func newTaskStore(maxTasks, maxBytes int) *taskStore {
	return &taskStore{maxTasks: maxTasks, maxBytes: maxBytes, keep: TaskRetention, now: time.Now, tasks: map[a2a.TaskID]*storedTask{}}
}

func (s *taskStore) Save(_ context.Context, t *a2a.Task) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("a2abridge: task without an id: %w", a2a.ErrInvalidParams)
	}
	c := cloneTask(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tasks[t.ID]
	if !ok {
		st = &storedTask{}
		s.tasks[t.ID] = st
		s.order = append(s.order, t.ID)
		for len(s.order) > s.maxTasks {
			s.forget(0)
		}
	}
	if st.sizer == nil {
		st.sizer = &sizer{}
	}
	n := st.sizer.size(t)
	s.bytes += n - st.bytes
	st.task, st.bytes = c, n
	if t.Status.State.Terminal() {
		st.sizer = nil
		if st.ended.IsZero() {
			st.ended = s.now()
		}
	}
	s.evict(t.ID)
	return nil
}

// admit reports whether a new task may start: the tasks kept hold less than
// maxBytes once the oldest ended tasks are forgotten.
func (s *taskStore) admit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	s.evict("")
	if s.bytes >= s.maxBytes {
		return fmt.Errorf("%w: %w", ErrTasksFull, a2a.ErrServerError)
	}
	return nil
}

// evict forgets the oldest ended tasks but keep until the tasks hold at most
// maxBytes, or none but running ones (and keep) are left.
func (s *taskStore) evict(keep a2a.TaskID) {
	for i := 0; s.bytes > s.maxBytes && i < len(s.order); {
		id := s.order[i]
		if id == keep || !s.tasks[id].task.Status.State.Terminal() {
			i++
			continue
		}
		s.forget(i)
	}
}

// expire forgets the tasks that ended more than keep ago.
func (s *taskStore) expire() {
	now := s.now()
	for i := 0; i < len(s.order); {
		if st := s.tasks[s.order[i]]; !st.ended.IsZero() && now.Sub(st.ended) > s.keep {
			s.forget(i)
			continue
		}
		i++
	}
}

// forget drops the task at s.order[i].
func (s *taskStore) forget(i int) {
	id := s.order[i]
	s.bytes -= s.tasks[id].bytes
	delete(s.tasks, id)
	s.order = slices.Delete(s.order, i, i+1)
}

func (s *taskStore) Get(_ context.Context, id a2a.TaskID) (*a2a.Task, error) {
	s.mu.Lock()
	st, ok := s.tasks[id]
	if ok && !st.ended.IsZero() && s.now().Sub(st.ended) > s.keep {
		s.forget(slices.Index(s.order, id))
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	return cloneTask(st.task), nil
}

// sizer counts a task's bytes (its parts, messages and metadata as JSON)
// across saves without measuring twice what a2a-go did not change: it
// appends parts to an artifact it keeps (the same pointer) and never edits a
// part or message once made, so an artifact seen before is measured only
// from its first new part, and a message seen before not at all. The maps
// hold a2a-go's pointers, only while the task runs.
type sizer struct {
	arts map[*a2a.Artifact]partsSize
	msgs map[*a2a.Message]int
}

type partsSize struct{ parts, bytes int }

func (z *sizer) size(t *a2a.Task) int {
	arts := make(map[*a2a.Artifact]partsSize, len(t.Artifacts))
	msgs := make(map[*a2a.Message]int, len(t.History)+1)
	n := jsonSize(t.Metadata)
	for _, a := range t.Artifacts {
		if a == nil {
			continue
		}
		ps := z.arts[a]
		if ps.parts > len(a.Parts) { // not the artifact measured: measure it all
			ps = partsSize{}
		}
		for _, p := range a.Parts[ps.parts:] {
			ps.bytes += jsonSize(p)
		}
		ps.parts = len(a.Parts)
		arts[a] = ps
		n += ps.bytes + jsonSize(a.Metadata) + len(a.Name) + len(a.Description)
	}
	for _, m := range append(slices.Clip(t.History), t.Status.Message) {
		if m == nil {
			continue
		}
		b, ok := z.msgs[m]
		if !ok {
			b = jsonSize(m)
		}
		msgs[m] = b
		n += b
	}
	z.arts, z.msgs = arts, msgs
	return n
}

// jsonSize is the length of v in JSON, without keeping the encoding; a value
// that does not encode counts as 1 KiB.
func jsonSize(v any) int {
	var c counter
	if err := json.NewEncoder(&c).Encode(v); err != nil {
		return 1 << 10
	}
	return int(c)
}

type counter int

func (c *counter) Write(p []byte) (int, error) {
	*c += counter(len(p))
	return len(p), nil
}

// cloneTask copies what a2a-go changes in place: the task, its artifact,
// part and history lists, its artifacts and the metadata maps. Parts and
// messages are shared: a2a-go replaces them, never edits them.
func cloneTask(t *a2a.Task) *a2a.Task {
	c := *t
	c.Metadata = maps.Clone(t.Metadata)
	c.History = slices.Clone(t.History)
	c.Artifacts = make([]*a2a.Artifact, len(t.Artifacts))
	for i, a := range t.Artifacts {
		if a == nil {
			continue
		}
		ac := *a
		ac.Parts = slices.Clone(a.Parts)
		ac.Metadata = maps.Clone(a.Metadata)
		ac.Extensions = slices.Clone(a.Extensions)
		c.Artifacts[i] = &ac
	}
	if t.Artifacts == nil {
		c.Artifacts = nil
	}
	return &c
}
