package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
)

// TestAnswersAreUTF8: JSON text must be UTF-8 (RFC 8259), and agents parse
// the local API's answers (and the bridges pass them on) with decoders that
// may refuse anything else; encoding/json lets invalid bytes inside a
// string through a json.RawMessage. A peer's output or stream event with
// invalid UTF-8 reaches the agent with each bad byte replaced by U+FFFD.
func TestAnswersAreUTF8(t *testing.T) {
	t.Parallel()
	acme, globex := start(t, "acme"), start(t, "globex")
	federate(t, acme, globex)
	bad := []byte("{\"a\":\"\xff\xfe ok \xc3\"}")
	for _, h := range []node.Handler{
		{Info: node.CapabilityInfo{Name: "badcall"},
			Backend: backend.Func(func(context.Context, backend.Invocation) ([]byte, error) { return bad, nil })},
		{Info: node.CapabilityInfo{Name: "badstream"},
			Streamer: backend.StreamFunc(func(_ context.Context, _ backend.Invocation, emit func([]byte) error) error { return emit(bad) })},
	} {
		if err := globex.n.Register(h); err != nil {
			t.Fatal(err)
		}
		if _, err := home.Grant(globex.home, "acme", h.Info.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := globex.n.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []struct{ path, capability string }{{"/v1/call", "badcall"}, {"/v1/stream", "badstream"}} {
		code, _, body := acme.raw(t, http.MethodPost, ep.path, `{"peer":"globex","capability":"`+ep.capability+`","input":{}}`)
		if code != http.StatusOK {
			t.Fatalf("%s: HTTP %d: %s", ep.path, code, body)
		}
		if !utf8.Valid(body) || !strings.Contains(string(body), "\"a\":\"\uFFFD ok \uFFFD\"") {
			t.Errorf("%s: the answer is not UTF-8, or lost the valid text: %q", ep.path, body)
		}
	}
}
