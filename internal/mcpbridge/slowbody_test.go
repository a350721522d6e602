package mcpbridge

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/localhttptest"
)

// Requests without the token whose body never arrives are refused at once.
func TestSlowBodyWithoutTokenRefusedPromptly(t *testing.T) {
	t.Parallel()
	b, err := New(Options{Node: newFake()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.HTTPHandler(strings.Repeat("k", 64))
	if err != nil {
		t.Fatal(err)
	}
	localhttptest.RefusedPromptly(t, h)
}
