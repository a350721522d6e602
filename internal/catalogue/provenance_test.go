package catalogue

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/localapi"
)

func TestMarkingAndDigest(t *testing.T) {
	t.Parallel()
	if u, v := Marking([]byte(`{"treaty_untrusted":{"verdict":{"action":"mark"},"content":"x"}}`)); !u || string(v) != `{"action":"mark"}` {
		t.Fatalf("wrapper: %v %s", u, v)
	}
	if u, _ := Marking([]byte(`"[treaty:untrusted score=0.9]\nx"`)); !u {
		t.Fatal("string marking missed")
	}
	if u, _ := Marking([]byte(`{"treaty_untrustedX":1}`)); u {
		t.Fatal("unmarked output reported as marked")
	}
	if d := RequestDigest(json.RawMessage(`{"request_base":"abc"}`)); d != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("digest %s", d)
	}
	if RequestDigest(json.RawMessage(`garbage`)) != "" {
		t.Fatal("digest of garbage")
	}
}

func TestErrorBody(t *testing.T) {
	t.Parallel()
	if e := ErrorBody(errors.New("boom")); e.Stage != localapi.StageInternal || e.Reason != "boom" {
		t.Fatalf("%+v", e)
	}
	if e := ErrorBody(fmt.Errorf("wrapped: %w", client.ErrNotRunning)); !strings.Contains(e.Reason, "treaty run") {
		t.Fatalf("not running: %+v", e)
	}
	if e := ErrorBody(&localapi.Error{Stage: localapi.StagePolicy, Reason: "denied", Remote: true}); e.Stage != localapi.StagePolicy || !e.Remote {
		t.Fatalf("node error: %+v", e)
	}
}

// TestClean: peer text loses control and format characters and is cut on a
// rune boundary.
func TestClean(t *testing.T) {
	t.Parallel()
	const max = 2048
	long := strings.Repeat("é", max) // 2 bytes each
	got := Clean(long, max)
	if !strings.HasSuffix(got, " [cut]") || len(got) > max+len(" [cut]") || !utf8.ValidString(got) {
		t.Fatalf("cut to %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := Clean("a\u200bb\u202ec\x1bd\ne", 100); got != "abcd\ne" {
		t.Fatalf("Clean = %q", got)
	}
	if got := Clean("a\xffb", 100); got != "a\uFFFDb" {
		t.Fatalf("invalid UTF-8 kept: %q", got)
	}
}

func TestProvenanceEvents(t *testing.T) {
	t.Parallel()
	var p Provenance
	p.Event([]byte(`{"x":1}`))
	p.Event([]byte(`{"treaty_untrusted":{"verdict":{"action":"mark"}}}`))
	p.Event([]byte(`{"y":2}`))
	if p.Events != 3 || !p.Untrusted || string(p.Screen) != `{"action":"mark"}` {
		t.Fatalf("%+v", p)
	}
}
