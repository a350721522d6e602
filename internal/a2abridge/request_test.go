package a2abridge

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
)

func TestParseMessage(t *testing.T) {
	skill := map[string]any{MetaSkill: "globex__echo"}
	for _, c := range []struct {
		name  string
		msg   string
		input string // "" when refused
		err   string
	}{
		{"data part", `{"metadata":{"skill":"globex__echo"},"parts":[{"kind":"data","data":{"q":1}}]}`, `{"q":1}`, ""},
		{"data wins over text", `{"metadata":{"skill":"s"},"parts":[{"kind":"text","text":"please"},{"kind":"data","data":{"q":1}}]}`, `{"q":1}`, ""},
		{"JSON text", `{"metadata":{"skill":"s"},"parts":[{"kind":"text","text":" [1,2] "}]}`, `[1,2]`, ""},
		{"plain text", `{"metadata":{"skill":"s"},"parts":[{"kind":"text","text":"review "},{"kind":"text","text":"this"}]}`, `{"text":"review this"}`, ""},
		{"no parts", `{"metadata":{"skill":"s"},"parts":[]}`, `{}`, ""},
		{"peer and capability", `{"metadata":{"treaty/peer":"globex","treaty/capability":"x"},"parts":[]}`, `{}`, ""},
		{"no target", `{"parts":[{"kind":"text","text":"hi"}]}`, "", "name the skill"},
		{"skill not a string", `{"metadata":{"skill":7},"parts":[]}`, "", "name the skill"},
		{"both targets", `{"metadata":{"skill":"s","treaty/peer":"globex"},"parts":[]}`, "", "not both"},
		{"peer alone", `{"metadata":{"treaty/peer":"globex"},"parts":[]}`, "", "go together"},
		{"two data parts", `{"metadata":{"skill":"s"},"parts":[{"kind":"data","data":{}},{"kind":"data","data":{}}]}`, "", "more than one data part"},
		{"file part", `{"metadata":{"skill":"s"},"parts":[{"kind":"file","file":{"uri":"file:///etc/passwd"}}]}`, "", "no files"},
		{"oversized text", `{"metadata":{"skill":"s"},"parts":[{"kind":"text","text":"` + strings.Repeat("a", MaxInput+1) + `"}]}`, "", "exceeds 1 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m a2a.Message
			if err := json.Unmarshal([]byte(c.msg), &m); err != nil {
				t.Fatal(err)
			}
			q, err := parseMessage(&m)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || string(q.Input) != c.input {
				t.Fatalf("input = %s, %v; want %s", q.Input, err, c.input)
			}
		})
	}
	if _, err := parseMessage(nil); err == nil {
		t.Fatal("nil message accepted")
	}
	q, err := parseMessage(&a2a.Message{Metadata: skill, Parts: a2a.ContentParts{&a2a.DataPart{Data: map[string]any{"a": "b"}}}})
	if err != nil || string(q.Input) != `{"a":"b"}` || q.Skill != "globex__echo" {
		t.Fatalf("pointer data part: %+v %v", q, err)
	}
}

// FuzzParseMessage: whatever a client sends, parsing never panics and an
// accepted message has a target and a JSON input within the bound.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"skill":"globex__echo"},"parts":[{"kind":"data","data":{"q":1}}]}`,
		`{"metadata":{"skill":"s"},"parts":[{"kind":"text","text":"{\"a\":"}]}`,
		`{"metadata":{"treaty/peer":"g","treaty/capability":"c"},"parts":[{"kind":"text","text":"\u202e"}]}`,
		`{"metadata":{"skill":"s"},"parts":[{"kind":"data","data":null}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m a2a.Message
		if json.Unmarshal(b, &m) != nil {
			return
		}
		q, err := parseMessage(&m)
		if err != nil {
			return
		}
		if q.Skill == "" && (q.Peer == "" || q.Capability == "") {
			t.Fatalf("accepted without a target: %+v", q)
		}
		if !json.Valid(q.Input) || len(q.Input) > MaxInput {
			t.Fatalf("accepted input %q", q.Input)
		}
	})
}

func TestTaskStoreKeepsTheNewest(t *testing.T) {
	s := newTaskStore(2, MaxTaskBytes)
	for _, id := range []a2a.TaskID{"a", "b", "a", "c"} {
		if err := s.Save(t.Context(), &a2a.Task{ID: id, ContextID: "x", Status: a2a.TaskStatus{State: a2a.TaskStateWorking}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(t.Context(), "a"); err != a2a.ErrTaskNotFound {
		t.Fatalf("the oldest task is kept: %v", err)
	}
	got, err := s.Get(t.Context(), "c")
	if err != nil || got.ID != "c" || got.Status.State != a2a.TaskStateWorking {
		t.Fatalf("newest: %+v %v", got, err)
	}
	got.Status.State = a2a.TaskStateFailed // a copy: the store is not changed
	if again, _ := s.Get(t.Context(), "c"); again.Status.State != a2a.TaskStateWorking {
		t.Fatal("Get returned the stored task, not a copy")
	}
	if err := s.Save(t.Context(), &a2a.Task{}); err == nil {
		t.Fatal("a task without an id was stored")
	}
}
