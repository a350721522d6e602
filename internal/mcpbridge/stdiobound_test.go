package mcpbridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// countingReader counts what the transport read of the agent's bytes.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestStdioMessageBounded: an agent's message on stdio past MaxStdioMessage
// ends the session with a refusal at stage usage naming the limit, after
// reading little more than the limit (not the SDK's 16 MiB), and the tool it
// asked for is never called.
func TestStdioMessageBounded(t *testing.T) {
	t.Parallel()
	f := newFake()
	var called atomic.Int32
	f.call = func(context.Context, string, string, json.RawMessage) (*localapi.CallResponse, error) {
		called.Add(1)
		return &localapi.CallResponse{Output: json.RawMessage(`{}`)}, nil
	}
	b, err := New(Options{Node: f})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	in := &countingReader{r: inR}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- b.Run(ctx, b.StdioTransport(in, outW)) }()
	t.Cleanup(func() { inW.Close(); outR.Close(); cancel() })
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
		}
	}()

	written := make(chan error, 1)
	go func() {
		_, err := io.WriteString(inW, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+legacyProtocol+`","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`+"\n"+
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
		if err == nil {
			// 8 MiB of arguments: within the SDK's 16 MiB, over ours.
			_, err = io.WriteString(inW, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"treaty_call","arguments":{"peer":"globex","capability":"echo","input":{"pad":"`+strings.Repeat("x", 8<<20)+`"}}}}`+"\n")
		}
		written <- err
	}()
	select {
	case err := <-served:
		var r *localapi.Error
		if !errors.As(err, &r) || r.Stage != localapi.StageUsage || !strings.Contains(r.Reason, "4194304 bytes") {
			t.Fatalf("the session ended with %v, want a refusal at stage usage naming the limit", err)
		}
	case <-ctx.Done():
		t.Fatal("an oversize message did not end the session")
	}
	if n := in.n.Load(); n > 2*MaxStdioMessage+1<<20 {
		t.Errorf("%d bytes of the agent's message were read", n)
	}
	if called.Load() != 0 {
		t.Error("the oversize call reached the node")
	}
	inR.CloseWithError(errors.New("test over")) // unblock the writer
	<-written
}
