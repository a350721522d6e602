package a2abridge

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/a2aproject/a2a-go/a2a"
)

// taskStore keeps the newest max tasks in memory for tasks/get and
// resubscription; a2a-go's own store keeps every task for ever. Tasks are
// stored and returned as copies (through JSON), since a2a-go edits what it
// gets.
type taskStore struct {
	max   int
	mu    sync.Mutex
	tasks map[a2a.TaskID][]byte
	order []a2a.TaskID // insertion order, oldest first
}

func newTaskStore(max int) *taskStore {
	return &taskStore{max: max, tasks: map[a2a.TaskID][]byte{}}
}

func (s *taskStore) Save(_ context.Context, t *a2a.Task) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("a2abridge: task without an id: %w", a2a.ErrInvalidParams)
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("a2abridge: store task: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[t.ID]; !ok {
		s.order = append(s.order, t.ID)
		for len(s.order) > s.max {
			delete(s.tasks, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.tasks[t.ID] = b
	return nil
}

func (s *taskStore) Get(_ context.Context, id a2a.TaskID) (*a2a.Task, error) {
	s.mu.Lock()
	b, ok := s.tasks[id]
	s.mu.Unlock()
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	var t a2a.Task
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("a2abridge: load task: %w", err)
	}
	return &t, nil
}
