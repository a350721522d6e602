package node_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// A stream event larger than a caller accepts (64 KiB a line) is refused by
// the callee that would send it: the call ends as the backend's failure,
// named max_event_bytes, after the events before it, instead of the caller
// cutting the stream as a wire refusal of an honest callee.
func TestStreamEventOverTheLineLimitFailsAtTheCallee(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{
		Name: "big", Stream: true,
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t,
			`echo '{"n":1}'; printf '{"blob":"%0100000d"}\n' 0; echo '{"n":3}'`+"\n")},
	})
	globex.Grant(t, "acme", "big")
	var got []string
	err := acme.Client().Stream(t.Context(), "globex", "big", json.RawMessage(`{}`), func(d json.RawMessage) error {
		got = append(got, string(d))
		return nil
	})
	var e *localapi.Error
	if !errors.As(err, &e) || e.Stage != refusal.StageBackend || !strings.Contains(e.Reason, "max_event_bytes") {
		t.Fatalf("stream with a 100 KB event: %v, want the backend stage naming max_event_bytes", err)
	}
	if code := localapi.ExitCode(err); code != 6 {
		t.Fatalf("exit code %d, want 6 (the capability failed on the remote side)", code)
	}
	if len(got) != 1 || got[0] != `{"n":1}` {
		t.Fatalf("events delivered: %q, want only the first", got)
	}
}
