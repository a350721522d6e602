package testnet

import (
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// A join whose inviter is gone says so once, at the transport stage, with
// the unreachable exit code: the transport's own errors already name it.
func TestJoinToAGoneInviterSaysWhy(t *testing.T) {
	c := NewCluster(t, 1, Options{Names: []string{"acme"}})
	acme := c.Member("acme")
	tok := invite(t, acme, time.Hour, 1)
	newcomer := c.Add(t, "newcomer", "")
	acme.Stop(t)
	_, err := newcomer.Node().Join(t.Context(), tok, "")
	if err == nil {
		t.Fatal("joined through a stopped inviter")
	}
	msg := err.Error()
	if localapi.StageOf(err) != localapi.StageTransport || localapi.ExitCode(err) != localapi.ExitUnreachable {
		t.Fatalf("join: %v (stage %q, exit %d), want the transport stage and exit %d", err, localapi.StageOf(err), localapi.ExitCode(err), localapi.ExitUnreachable)
	}
	if strings.Count(msg, "transport:") != 1 || !strings.Contains(msg, "inviter at "+acme.Addr()) {
		t.Fatalf("join: %q, want one stage prefix and the inviter's address", msg)
	}
}
