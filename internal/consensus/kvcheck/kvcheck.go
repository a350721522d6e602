// Package kvcheck checks that a history of concurrent operations on a
// consensus group's key-value store is linearizable, with porcupine. It
// serves the tests of both engines and of real node processes, so that they
// judge a history by one model: a put bumps a key's version, a compare-and-
// set applies only at its version (0: absent), and an operation whose
// outcome is unknown may take effect at any later time.
package kvcheck

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is one client operation on one key.
type Op struct {
	Kind      string // "get", "put" or "cas"
	Key       string
	Value     string
	IfVersion uint64 // cas: the version it applies at
}

// Result is an operation's outcome.
type Result struct {
	// Unknown: the request may have been committed (a timeout, a node
	// killed while it answered).
	Unknown bool
	// Refused: the group refused it (a replayed sequence number), so it
	// had no effect.
	Refused bool
	OK      bool // put/cas applied; get: the key exists
	Value   string
	// Version is the version after a put or cas, the current one on a get,
	// and on a cas mismatch the current one when MismatchVersion is set
	// (the local API does not return it).
	Version         uint64
	MismatchVersion bool
}

type state struct {
	value   string
	version uint64
}

// Model is the store for porcupine, partitioned by key.
var Model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range h {
			k := o.Input.(Op).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], o)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return state{} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(state), in.(Op), out.(Result)
		if o.Refused {
			return true, s
		}
		switch i.Kind {
		case "get":
			return o.Unknown || o.OK == (s.version > 0) && o.Value == s.value && o.Version == s.version, s
		case "put":
			next := state{value: i.Value, version: s.version + 1}
			return o.Unknown || o.OK && o.Version == next.version, next
		default: // cas
			match := i.IfVersion == s.version
			next := s
			if match {
				next = state{value: i.Value, version: s.version + 1}
			}
			switch {
			case o.Unknown:
				return true, next
			case o.OK:
				return match && o.Version == next.version, next
			}
			return !match && (!o.MismatchVersion || o.Version == s.version), s
		}
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(Op), out.(Result)
		return fmt.Sprintf("%s(%s %q if %d) -> %+v", i.Kind, i.Key, i.Value, i.IfVersion, o)
	},
}

// History collects the operations of concurrent clients.
type History struct {
	mu      sync.Mutex
	start   time.Time
	ops     []porcupine.Operation
	known   int // operations with a known outcome
	after   int // of those, called after Mark
	viaNode map[int]int
	since   int64
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock, for an operation's call time.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records op, called at call through node, with its result. An unknown
// result never returns: it may take effect at any later time.
func (h *History) Add(client, node int, op Op, call int64, r Result) {
	ret := h.Now()
	if r.Unknown {
		ret = math.MaxInt64
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: op, Call: call, Output: r, Return: ret})
	if r.Unknown {
		return
	}
	h.known++
	if h.since > 0 && call > h.since {
		h.after++
		h.viaNode[node]++
	}
}

// Mark starts counting the operations called from now on.
func (h *History) Mark() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since, h.after, h.viaNode = h.Now(), 0, map[int]int{}
}

// Counts returns the operations with a known outcome, those called after
// Mark, and those by node.
func (h *History) Counts() (known, after int, viaNode map[int]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.known, h.after, maps.Clone(h.viaNode)
}

// Check reports whether the history is linearizable within timeout
// (porcupine.Unknown when it ran out) and, when it is not, describes the
// operations of each key whose history fails, in call order.
func (h *History) Check(timeout time.Duration) (porcupine.CheckResult, []string) {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	h.mu.Unlock()
	res := porcupine.CheckOperationsTimeout(Model, ops, timeout)
	if res == porcupine.Ok {
		return res, nil
	}
	var lines []string
	for _, part := range Model.Partition(ops) {
		if porcupine.CheckOperationsTimeout(Model, part, timeout/4) == porcupine.Ok {
			continue
		}
		slices.SortFunc(part, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		for _, o := range part {
			lines = append(lines, fmt.Sprintf("client %d [%d, %d] %s", o.ClientId, o.Call, o.Return, Model.DescribeOperation(o.Input, o.Output)))
		}
	}
	return res, lines
}

// Len is the number of operations recorded.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}
