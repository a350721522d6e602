package config

import (
	"strings"
	"testing"
)

func TestExecBackendEnvValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		exec ExecBackend
		bad  string // substring of the error; "" for valid
	}{
		{ExecBackend{Command: "x", Env: []string{"A=1", "B_2="}, EnvAllow: []string{"MODEL_API_KEY"}}, ""},
		{ExecBackend{Command: "x", Env: []string{"NOEQUALS"}}, "env[0]"},
		{ExecBackend{Command: "x", Env: []string{"1A=x"}}, "env[0]"},
		{ExecBackend{Command: "x", Env: []string{"A=1", "TREATY_PEER=x"}}, "env[1] TREATY_PEER"},
		{ExecBackend{Command: "x", EnvAllow: []string{"OK", "BAD-NAME"}}, "env_allow[1]"},
		{ExecBackend{Command: "x", EnvAllow: []string{"TREATY_HOME"}}, "env_allow[0] TREATY_HOME"},
		{ExecBackend{Command: "x", EnvAllow: []string{"A=B"}}, "env_allow[0]"},
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
