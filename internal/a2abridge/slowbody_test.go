package a2abridge

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/localhttptest"
)

// Requests without the token whose body never arrives are refused at once.
func TestSlowBodyWithoutTokenRefusedPromptly(t *testing.T) {
	b, err := New(Options{Node: newFake(), URL: "http://127.0.0.1/"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.HTTPHandler(testToken)
	if err != nil {
		t.Fatal(err)
	}
	localhttptest.RefusedPromptly(t, h)
}
