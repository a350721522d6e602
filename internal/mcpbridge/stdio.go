package mcpbridge

import (
	"errors"
	"fmt"
	"io"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpframe"
	"github.com/treaty-dev/treaty/localapi"
)

// MaxStdioMessage bounds one message an agent sends on stdio, as
// MaxRequestBytes bounds an HTTP request body. Past it the session ends (the
// rest of the line cannot be told from the next message): Run returns a
// refusal at stage usage naming the limit, and it is logged.
const MaxStdioMessage = MaxRequestBytes

// StdioTransport is the MCP transport over in and out (os.Stdin and
// os.Stdout for `treaty mcp`) with every message the agent sends bounded at
// MaxStdioMessage, not the SDK's 16 MiB. Closing it closes in (when in is an
// io.Closer), not out.
func (b *Bridge) StdioTransport(in io.Reader, out io.Writer) mcp.Transport {
	return &mcp.IOTransport{
		Reader: readCloser{&clientBound{b: b, r: mcpframe.Reader{R: in, Max: MaxStdioMessage}}, in},
		Writer: nopCloser{out},
		// The SDK's bound stays as a backstop above ours: it also counts
		// what its decoder read ahead of a message.
		MaxLineLength: 2*MaxStdioMessage + 64<<10,
	}
}

// clientBound turns the frame bound's error into a refusal and logs it once.
type clientBound struct {
	b      *Bridge
	r      mcpframe.Reader
	logged bool
}

func (c *clientBound) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if errors.Is(err, mcpframe.ErrTooLarge) {
		if !c.logged {
			c.logged = true
			c.b.log.Warn("mcp: a message from the client exceeds the limit; the session ends", "stage", localapi.StageUsage, "limit_bytes", MaxStdioMessage)
		}
		return n, &localapi.Error{Stage: localapi.StageUsage, Reason: fmt.Sprintf("an MCP message from the client exceeds %d bytes", MaxStdioMessage), Err: err}
	}
	return n, err
}

type nopCloser struct{ io.Writer }

// readCloser closes the underlying input (os.Stdin), as the SDK's stdio
// transport does, when that can be closed.
type readCloser struct {
	io.Reader
	in io.Reader
}

func (r readCloser) Close() error {
	if c, ok := r.in.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (nopCloser) Close() error { return nil }
