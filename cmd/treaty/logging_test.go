package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log, err := newLogger(&b, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "event", "call.refused")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", b.String(), err)
	}
	if rec["msg"] != "shown" || rec["event"] != "call.refused" {
		t.Fatalf("record = %v", rec)
	}
	b.Reset()
	if log, err = newLogger(&b, "text", "debug"); err != nil {
		t.Fatal(err)
	}
	log.Debug("x", "event", "e")
	if !strings.Contains(b.String(), "level=DEBUG") || !strings.Contains(b.String(), "event=e") {
		t.Fatalf("text debug line = %q", b.String())
	}
	for _, bad := range [][2]string{{"xml", "info"}, {"json", "loud"}} {
		if _, err := newLogger(&b, bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "--log-") {
			t.Errorf("newLogger(%q, %q) = %v; want a usage error naming the flag", bad[0], bad[1], err)
		}
	}
}

// TestRunRejectsBadLogFlags: a bad --log-format or --log-level is a usage
// error before the node opens.
func TestRunRejectsBadLogFlags(t *testing.T) {
	dir := t.TempDir()
	for _, a := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}} {
		_, errOut, code := runTL(t, append([]string{"run", "--home", dir}, a...)...)
		if code != 2 || !strings.Contains(errOut, a[0]) {
			t.Errorf("run %v: exit %d, %q; want 2 naming the flag", a, code, errOut)
		}
	}
}
