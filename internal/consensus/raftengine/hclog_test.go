package raftengine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestHCLogger: raft's log calls reach slog at the matching level with the
// logger's name and arguments, and levels below the handler's are dropped.
func TestHCLogger(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Named("raft").With("peer", "p1").Warn("heartbeat failed", "err", "timeout")
	l.Debug("dropped")
	out := buf.String()
	for _, want := range []string{"level=WARN", `msg="heartbeat failed"`, "component=raft", "peer=p1", "err=timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing from %q", want, out)
		}
	}
	if strings.Contains(out, "dropped") || l.IsDebug() || !l.IsInfo() {
		t.Errorf("debug not filtered: %q", out)
	}
	l.StandardLogger(nil).Print("std line\n")
	if !strings.Contains(buf.String(), `msg="std line"`) {
		t.Errorf("standard logger: %q", buf.String())
	}
}
