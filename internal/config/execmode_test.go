package config

import (
	"strings"
	"testing"
)

func TestExecBackendModeValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		exec ExecBackend
		bad  string // substring of the error; "" for valid
	}{
		{ExecBackend{Command: "x"}, ""},
		{ExecBackend{Command: "x", Mode: "call"}, ""},
		{ExecBackend{Command: "x", Mode: "worker"}, ""},
		{ExecBackend{Command: "x", Mode: "worker", Workers: 4}, ""},
		{ExecBackend{Command: "x", Mode: "worker", Workers: MaxExecWorkers + 1}, "workers 65 outside"},
		{ExecBackend{Command: "x", Mode: "worker", Workers: -1}, "workers -1 outside"},
		{ExecBackend{Command: "x", Workers: 2}, `workers 2 needs mode "worker"`},
		{ExecBackend{Command: "x", Mode: "Worker"}, `mode "Worker" is not`},
	} {
		c := &Config{Name: "n", Listen: DefaultListen, Capabilities: []Capability{{Name: "cap", Exec: &tc.exec}}}
		err := c.Validate()
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%+v refused: %v", tc.exec, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "capabilities[0].exec.")):
			t.Errorf("%+v: err %v, want one naming capabilities[0].exec.%s", tc.exec, err, tc.bad)
		}
	}
}
