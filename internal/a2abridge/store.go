package a2abridge

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/a2aproject/a2a-go/a2a"
)

// taskStore keeps the newest max tasks in memory for tasks/get and
// resubscription; a2a-go's own store keeps every task for ever. a2a-go edits
// a task after saving it and edits what Get returns, so both copy the
// task's structure (the slices and maps a2a-go appends to or sets), not its
// content: a2a-go saves after every artifact update, and copying the
// content each time would make a stream of n events cost O(n²).
type taskStore struct {
	max   int
	mu    sync.Mutex
	tasks map[a2a.TaskID]*a2a.Task
	order []a2a.TaskID // insertion order, oldest first
}

func newTaskStore(max int) *taskStore {
	return &taskStore{max: max, tasks: map[a2a.TaskID]*a2a.Task{}}
}

func (s *taskStore) Save(_ context.Context, t *a2a.Task) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("a2abridge: task without an id: %w", a2a.ErrInvalidParams)
	}
	c := cloneTask(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[t.ID]; !ok {
		s.order = append(s.order, t.ID)
		for len(s.order) > s.max {
			delete(s.tasks, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.tasks[t.ID] = c
	return nil
}

func (s *taskStore) Get(_ context.Context, id a2a.TaskID) (*a2a.Task, error) {
	s.mu.Lock()
	t, ok := s.tasks[id]
	s.mu.Unlock()
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	return cloneTask(t), nil
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
