package backend

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpfake"
)

// TestMCPDescribeLargeListPage: a tools/list page longer than a call's answer
// may be (2*MaxOutput + 1 MiB, 3 MiB by default) is read, up to MaxListPage,
// from a stdio server and an HTTP one; a longer page fails Describe with a
// reason naming the page limit. Before, a page over 3 MiB failed as an
// oversized message on stdio and, over HTTP, as "a2a: the agent's answer
// exceeds the backend's limit". Calls keep their own bound.
func TestMCPDescribeLargeListPage(t *testing.T) {
	t.Parallel()
	wantOver := fmt.Sprintf("mcp server tools/list page exceeds limit max_list_page_bytes=%d", MaxListPage)
	over := func(t *testing.T, err error) {
		t.Helper()
		var f *Failure
		if !errors.As(err, &f) || f.Reason != wantOver {
			t.Fatalf("a page over the limit: %v, want %q", err, wantOver)
		}
	}
	t.Run("stdio", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			pad  int
			fits bool
		}{{pad: 5 << 20, fits: true}, {pad: MaxListPage + 1<<20}} {
			m := &MCP{Argv: []string{MCPTestServer(t), "-listpad", fmt.Sprint(c.pad)}, Tool: "echo", Timeout: 20 * time.Second}
			t.Cleanup(func() { m.Close() })
			desc, _, err := m.Describe(t.Context())
			if !c.fits {
				over(t, err)
				// The session ended with it; a call starts the server again.
				if v, err := callMCP(t, m, `{"msg":"after"}`); err != nil || v["msg"] != "after" {
					t.Fatalf("a call after the refused page: %v %v", v, err)
				}
				continue
			}
			if err != nil || desc != "echoes msg" {
				t.Fatalf("a %d MiB page: %q %v", c.pad>>20, desc, err)
			}
			// Outside tools/list the message bound is a call's again.
			m.Tool = "huge"
			_, err = m.Call(t.Context(), Invocation{Input: []byte(fmt.Sprintf(`{"bytes":%d}`, 4<<20))})
			var f *Failure
			if !errors.As(err, &f) || f.Reason != fmt.Sprintf("mcp server message exceeds limit max_message_bytes=%d", mcpMessageLimit(DefaultMaxOutput)) {
				t.Fatalf("a 4 MiB call answer after a large page: %v", err)
			}
		}
	})
	t.Run("http", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			pad  int
			fits bool
		}{{pad: 5 << 20, fits: true}, {pad: MaxListPage + 1<<20}} {
			var b strings.Builder
			b.WriteString("[")
			desc := strings.Repeat("p", 64<<10)
			for i := 0; i*len(desc) < c.pad; i++ {
				fmt.Fprintf(&b, `{"name":"pad%d","description":%q,"inputSchema":{"type":"object"}},`, i, desc)
			}
			b.WriteString(`{"name":"t","description":"found","inputSchema":{"type":"object"}}]`)
			srv := mcpfake.New(t, b.String())
			m := &MCP{URL: srv.URL, Tool: "t", Timeout: 20 * time.Second}
			t.Cleanup(func() { m.Close() })
			got, _, err := m.Describe(t.Context())
			if !c.fits {
				over(t, err)
				continue
			}
			if err != nil || got != "found" {
				t.Fatalf("a %d MiB page: %q %v", c.pad>>20, got, err)
			}
		}
	})
}
