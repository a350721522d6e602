package dashboard

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/localhttptest"
)

// Requests without the token whose body never arrives are refused at once.
func TestSlowBodyWithoutTokenRefusedPromptly(t *testing.T) {
	localhttptest.RefusedPromptly(t, newTestHandler(t, false)) // no Host check: the token is what refuses
	localhttptest.RefusedPromptly(t, newTestHandler(t, true))  // the Host check refuses
}
