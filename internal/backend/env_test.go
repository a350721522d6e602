package backend

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestExecEnvironmentIsMinimal runs a real command that dumps its whole
// environment: a secret in the node's environment does not reach it unless
// allowed by name, and the node's TREATY_* values win over configured ones.
func TestExecEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("TREATY_TEST_NODE_SECRET", "s3cret-not-for-backends")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
	t.Setenv("MODEL_API_KEY", "allowed-value")
	t.Setenv("LANG", "C.UTF-8")
	dump := `env | awk -F= 'BEGIN{printf "{"} NR>1{printf ","} {k=$1; sub(/^[^=]*=/,""); gsub(/"/,""); printf "\"%s\":\"%s\"", k, $0} END{printf "}"}'`
	e := &Exec{Argv: script(t, dump), Env: []string{"EXTRA=1", "TREATY_PEER=spoofed"}, EnvAllow: []string{"MODEL_API_KEY", "UNSET_NAME_XYZ"}, Timeout: 5 * time.Second}
	in := inv(t, `{}`)
	in.Home = "/tmp/home"
	out, err := e.Call(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, name := range []string{"TREATY_TEST_NODE_SECRET", "AWS_SECRET_ACCESS_KEY", "UNSET_NAME_XYZ"} {
		if v, ok := env[name]; ok {
			t.Errorf("%s reached the backend: %q", name, v)
		}
	}
	want := map[string]string{
		"MODEL_API_KEY": "allowed-value", "LANG": "C.UTF-8", "EXTRA": "1",
		"TREATY_PEER": in.Peer.String(), "TREATY_CAPABILITY": "review", "TREATY_HOME": "/tmp/home",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	allowed := map[string]bool{"PATH": true, "HOME": true, "PWD": true, "SHLVL": true, "_": true, "OLDPWD": true}
	for k := range want {
		allowed[k] = true
	}
	for k := range env {
		if !allowed[k] {
			t.Errorf("unexpected variable %s in the backend's environment", k)
		}
	}
}

func TestExecEnviron(t *testing.T) {
	t.Parallel()
	node := map[string]string{"PATH": "/bin", "SECRET": "x", "KEEP": "k"}
	lookup := func(n string) (string, bool) { v, ok := node[n]; return v, ok }
	e := &Exec{EnvAllow: []string{"KEEP"}, Env: []string{"A=b"}}
	got := e.environ(Invocation{Capability: "c"}, lookup)
	want := []string{"PATH=/bin", "KEEP=k", "A=b", "TREATY_PEER=" + (Invocation{}).Peer.String(), "TREATY_CAPABILITY=c"}
	if len(got) != len(want) {
		t.Fatalf("environ = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("environ = %q, want %q", got, want)
		}
	}
}
