package refusal

import (
	"errors"
	"fmt"
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("plain"), ExitError},
		{New(StageUsage, "bad %s", "flag"), ExitUsage},
		{New(StageResolve, "unknown peer"), ExitDenied},
		{New(StageBudget, "rate"), ExitDenied},
		{New(StageWire, "replay"), ExitDenied},
		{New(StageTrust, "quarantined"), ExitDenied},
		{New(StagePolicy, "not_granted"), ExitDenied},
		{New(StageTransport, "unreachable"), ExitUnreachable},
		{New(StageSanitize, "aws_access_key"), ExitBlocked},
		{New(StageScreen, "injection"), ExitBlocked},
		{New(StageBackend, "timed_out"), ExitRemoteFail},
		{New(StageAudit, "not durable"), ExitError},
		{New(StageInternal, "bug"), ExitError},
		{fmt.Errorf("call: %w", New(StagePolicy, "x")), ExitDenied},
		{Wrap(StageTransport, errors.New("refused")), ExitUnreachable},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestWrapAndStageOf(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	err := fmt.Errorf("dial: %w", Wrap(StageTransport, cause))
	if StageOf(err) != StageTransport || !errors.Is(err, cause) {
		t.Fatalf("StageOf = %q, Is(cause) = %v", StageOf(err), errors.Is(err, cause))
	}
	if StageOf(cause) != "" {
		t.Fatal("a plain error has a stage")
	}
	if got := New(StageUsage, "bad %q", "x").Error(); got != `usage: bad "x"` {
		t.Fatalf("Error() = %s", got)
	}
}

// The aliases make a refusal made here the same type clients of localapi see.
func TestSameTypeAsLocalAPI(t *testing.T) {
	t.Parallel()
	var le *localapi.Error
	if !errors.As(fmt.Errorf("x: %w", New(StagePolicy, "no")), &le) || le.Stage != localapi.StagePolicy {
		t.Fatal("a refusal is not a *localapi.Error")
	}
}
