package backend

import (
	"path/filepath"
	"testing"
	"time"
)

// A stdio MCP server's children end with its session: a server started
// through a launcher (npx, a shell script) leaves no process behind when it
// is closed or idles out.
func TestMCPCloseKillsTheServersGroup(t *testing.T) {
	dir := t.TempDir()
	childFile, pidfile := filepath.Join(dir, "child"), filepath.Join(dir, "pid")
	argv := script(t, `sleep 300 >/dev/null 2>&1 </dev/null & echo $! > `+childFile+`
exec `+MCPTestServer(t)+` -pidfile `+pidfile+"\n")
	m := &MCP{Argv: argv, Tool: "echo", Timeout: 10 * time.Second}
	t.Cleanup(func() { m.Close() })
	if _, err := callMCP(t, m, `{"msg":"a"}`); err != nil {
		t.Fatal(err)
	}
	child := readPid(t, childFile)
	if err := m.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	waitGone(t, ReadPID(t, pidfile, 0))
	waitGone(t, child)
}
