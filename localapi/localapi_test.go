package localapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The stage -> exit code -> HTTP status table of DESIGN.md and docs/api.md.
var table = []struct {
	stage Stage
	exit  int
	http  int
}{
	{StageUsage, ExitUsage, 400},
	{StageResolve, ExitDenied, 403},
	{StageBudget, ExitDenied, 403},
	{StageSanitize, ExitBlocked, 422},
	{StageTransport, ExitUnreachable, 502},
	{StageWire, ExitDenied, 403},
	{StageTrust, ExitDenied, 403},
	{StagePolicy, ExitDenied, 403},
	{StageScreen, ExitBlocked, 422},
	{StageBackend, ExitRemoteFail, 424},
	{StageConsensus, ExitError, 409},
	{StageAudit, ExitError, 500},
	{StageInternal, ExitError, 500},
	{Stage("from-a-newer-node"), ExitError, 500},
}

func TestExitCodeAndHTTPStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range table {
		err := &Error{Stage: tc.stage, Reason: "r"}
		wrapped := fmt.Errorf("context: %w", err)
		for _, e := range []error{err, wrapped} {
			if got := ExitCode(e); got != tc.exit {
				t.Errorf("ExitCode(%v) = %d, want %d", e, got, tc.exit)
			}
			if got := HTTPStatus(e); got != tc.http {
				t.Errorf("HTTPStatus(%v) = %d, want %d", e, got, tc.http)
			}
		}
	}
	if ExitCode(nil) != ExitOK || HTTPStatus(nil) != 200 {
		t.Error("nil is not OK")
	}
	if ExitCode(io.EOF) != ExitError || HTTPStatus(io.EOF) != 500 || StageOf(io.EOF) != "" {
		t.Error("a plain error is not ExitError / 500 / no stage")
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	cause := errors.New("disk full")
	e := &Error{Stage: StageAudit, Reason: "not durable", Err: cause}
	if e.Error() != "audit: not durable" || !errors.Is(e, cause) {
		t.Fatalf("Error() = %q, Is(cause) = %v", e.Error(), errors.Is(e, cause))
	}
	r := &Error{Stage: StagePolicy, Reason: "not_granted", Remote: true}
	if r.Error() != "remote policy: not_granted" {
		t.Fatalf("remote Error() = %q", r.Error())
	}
}

func TestErrorBodyJSON(t *testing.T) {
	t.Parallel()
	var resp ErrorResponse
	if err := json.Unmarshal([]byte(`{"error":{"stage":"policy","reason":"not_granted","remote":true}}`), &resp); err != nil {
		t.Fatal(err)
	}
	got := resp.Error.Err()
	if got.Stage != StagePolicy || got.Reason != "not_granted" || !got.Remote || got.Err != nil {
		t.Fatalf("Err() = %+v", got)
	}
	b, _ := json.Marshal(ErrorResponse{Error: &ErrorBody{Stage: StageUsage, Reason: "x"}})
	if string(b) != `{"error":{"stage":"usage","reason":"x"}}` {
		t.Fatalf("marshal = %s", b)
	}
}

// TestStandardLibraryOnly keeps localapi a leaf: agents import it for the types.
func TestStandardLibraryOnly(t *testing.T) {
	t.Parallel()
	out, err := exec.CommandContext(t.Context(), filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if deps := strings.Fields(string(out)); len(deps) != 1 || deps[0] != "github.com/treaty-dev/treaty/localapi" {
		t.Fatalf("localapi links %v; it may link only the standard library", deps)
	}
}
