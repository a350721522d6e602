package mcpbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestStreamProgressBounded: a stream event over MaxProgressMessage reaches
// the agent's progress notification cut, on a UTF-8 boundary, ending in a
// marker with its size; the result still holds the whole event.
func TestStreamProgressBounded(t *testing.T) {
	t.Parallel()
	small := `{"tick":1}`
	big := `{"text":"` + strings.Repeat("é", 40<<10) + `"}` // 80 KiB, two bytes a rune
	f := newFake()
	f.stream = func(_ context.Context, _, _ string, _ json.RawMessage, emit func(json.RawMessage) error) error {
		for _, ev := range []string{small, big} {
			if err := emit(json.RawMessage(ev)); err != nil {
				return err
			}
		}
		return nil
	}
	s := connect(t, f, 0)
	res := s.call(t, "globex__ticks", map[string]any{}, "tok")
	if res.IsError || !strings.Contains(text(res), big) {
		t.Fatalf("the result lost the big event: %.200q", text(res))
	}
	for i, want := range []string{small, big} {
		select {
		case p := <-s.progress:
			switch {
			case want == small && p.Message != small:
				t.Fatalf("a small event's progress = %q", p.Message)
			case want == big:
				marker := fmt.Sprintf(" [treaty:cut: event of %d bytes; see the result]", len(big))
				body, ok := strings.CutSuffix(p.Message, marker)
				if !ok || len(body) > MaxProgressMessage || len(body) < MaxProgressMessage-utf8.UTFMax || !strings.HasPrefix(big, body) || !utf8.ValidString(body) {
					t.Fatalf("a big event's progress: %d bytes, ends %q", len(p.Message), p.Message[max(0, len(p.Message)-80):])
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("progress %d missing", i)
		}
	}
}
