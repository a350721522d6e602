package backend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMCPStdioMessageBounded: a stdio server's message past 2*MaxOutput +
// 1 MiB fails the call with a reason naming the limit (the node refuses it at
// stage backend), whether it is a complete answer or an endless one; the
// node does not read up to the SDK's 16 MiB first, and the next call works
// on a new server.
func TestMCPStdioMessageBounded(t *testing.T) {
	t.Parallel()
	const maxOut = 1024
	limit := mcpMessageLimit(maxOut)
	want := fmt.Sprintf("mcp server message exceeds limit max_message_bytes=%d", limit)
	m, pidfile := stdioMCP(t, "huge")
	m.MaxOutput = maxOut

	// Within the bound, past MaxOutput: the usual output refusal.
	_, err := m.Call(t.Context(), Invocation{Input: []byte(`{"bytes":4096}`)})
	var f *Failure
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "output exceeds limit") {
		t.Fatalf("a 4 KiB answer: %v", err)
	}
	first := ReadPID(t, pidfile, 0)

	// A complete answer over the message bound.
	_, err = m.Call(t.Context(), Invocation{Input: []byte(fmt.Sprintf(`{"bytes":%d}`, 4<<20))})
	if !errors.As(err, &f) || f.Reason != want {
		t.Fatalf("a 4 MiB answer: %v, want %q", err, want)
	}

	// An endless unterminated message.
	m.Tool = "flood"
	start := time.Now()
	_, err = m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
	if !errors.As(err, &f) || f.Reason != want {
		t.Fatalf("an endless message: %v, want %q", err, want)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("the endless message took %v to refuse", d)
	}

	// The session ended with it; a new server answers.
	m.Tool = "echo"
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := callMCP(t, m, `{"msg":"again"}`)
		if err == nil {
			if v["msg"] != "again" || int(v["pid"].(float64)) == first {
				t.Fatalf("after the oversize message: %v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new server after an oversize message: %v", err)
		}
	}
}

// TestMessageBound: the bound is per message, not per line: a message split
// over short lines is cut, messages of exactly the limit pass, and bytes in
// strings (brackets, escaped quotes) do not end a message.
func TestMessageBound(t *testing.T) {
	read := func(in string, max int) (string, bool) {
		var over atomic.Bool
		out, err := io.ReadAll(&messageBound{r: strings.NewReader(in), max: max, over: &over})
		if err != nil && !errors.Is(err, errMessageTooLarge) {
			t.Fatalf("%q: %v", in, err)
		}
		if (err != nil) != over.Load() {
			t.Fatalf("%q: err %v but over %v", in, err, over.Load())
		}
		return string(out), over.Load()
	}
	msg := `{"a":"x]}\"y","b":[1,2]}`
	if out, over := read(msg+"\n"+msg+"\n", len(msg)+1); over || out != msg+"\n"+msg+"\n" {
		t.Errorf("two messages at the limit: over=%v %q", over, out)
	}
	if _, over := read(msg, len(msg)-1); !over {
		t.Error("a message one byte over the limit passed")
	}
	split := "[" + strings.Repeat("1,\n", 100) + "1]\n"
	if out, over := read(split, 50); !over || len(out) != 50 {
		t.Errorf("a message split over lines: over=%v, %d bytes read", over, len(out))
	}
	if _, over := read(`{"s":"`+strings.Repeat(`}`, 100)+`"}`, 50); !over {
		t.Error("closing brackets inside a string ended the message")
	}
}

// FuzzMessageBound: on any bytes the reader never passes on a message longer
// than max, never passes on bytes it did not read, and stops early only
// with errMessageTooLarge.
func FuzzMessageBound(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a\"]}"}]}}`+"\n"), 64)
	f.Add([]byte("[1,\n2,\n3]\n{}\n"), 4)
	f.Add([]byte(`]]]]{{{{"\\\"`), 3)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		var over atomic.Bool
		r := &messageBound{r: iotestOneByte{bytes.NewReader(in)}, max: max, over: &over}
		out, err := io.ReadAll(r)
		if err != nil && !errors.Is(err, errMessageTooLarge) {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(in, out) {
			t.Fatal("passed on bytes it did not read")
		}
		if err == nil && len(out) != len(in) {
			t.Fatalf("read %d of %d bytes without an error", len(out), len(in))
		}
		if r.run > max || r.depth < 0 {
			t.Fatalf("run %d (max %d), depth %d", r.run, max, r.depth)
		}
	})
}

// iotestOneByte reads a byte at a time, so state carries across reads.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
