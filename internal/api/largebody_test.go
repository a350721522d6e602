package api_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// TestLargeBodiesBounded: at most 4 request bodies over 64 KiB are read at
// once; a 5th that finds no slot in time is refused (403, stage budget), and
// a slot is free again once its body is read or its client gone. Before, a
// local process could make the node read 1,024 bodies of 16 MiB at once.
func TestLargeBodiesBounded(t *testing.T) {
	t.Parallel()
	e := start(t, "acme")
	e.srv.SlotWaitForTest(200 * time.Millisecond)
	sock := filepath.Join(e.home, localapi.SocketName)
	post := func(n int, send string) net.Conn {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte("POST /v1/trust/set HTTP/1.1\r\nHost: treaty\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n" + send))
		return c
	}
	var holders []net.Conn
	for range 4 {
		holders = append(holders, post(1<<20, "{"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.LargeBodiesForTest() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d large bodies being read, want 4", e.srv.LargeBodiesForTest())
		}
		runtime.Gosched()
	}
	// A small body still goes through.
	e.rawError(t, "POST", "/v1/trust/set", `{"peer":"nobody","lift":true}`, 403, localapi.StageResolve)
	// A 5th large one is refused.
	c := post(1<<20, "")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	var er localapi.ErrorResponse
	if json.NewDecoder(resp.Body).Decode(&er) != nil || resp.StatusCode != 403 || er.Error == nil || er.Error.Stage != localapi.StageBudget {
		t.Fatalf("5th large body = %d %+v, want 403 budget", resp.StatusCode, er.Error)
	}
	// A holder that leaves frees its slot.
	holders[0].Close()
	big := `{"peer":"nobody","lift":true,"floor":"` + strings.Repeat("x", 100<<10) + `"}`
	for {
		code, _, b := e.raw(t, "POST", "/v1/trust/set", big)
		if code != 403 || !strings.Contains(string(b), `"budget"`) {
			if code != 403 || !strings.Contains(string(b), `"resolve"`) {
				t.Fatalf("large body after a slot freed = %d %s", code, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a gone holder's slot was not freed")
		}
		runtime.Gosched()
	}
}
