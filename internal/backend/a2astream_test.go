package backend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// sseAgent is an A2A agent on loopback whose message/stream answers with
// events events, each an artifact update of a text part of size bytes, then
// the task's completion.
func sseAgent(t *testing.T, events, size int) string {
	t.Helper()
	mux := http.NewServeMux()
	hs := httptest.NewUnstartedServer(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	mux.HandleFunc("/.well-known/agent-card.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": "agent", "description": "a", "url": hs.URL + "/",
			"preferredTransport": "JSONRPC", "protocolVersion": "0.3.0", "version": "1",
			"capabilities": map[string]any{"streaming": true}, "defaultInputModes": []string{"text/plain"}, "defaultOutputModes": []string{"text/plain"},
			"skills": []map[string]any{{"id": "s", "name": "s", "description": "d", "tags": []string{}}}})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "text/event-stream")
		text := strings.Repeat("x", size)
		for i := range events {
			ev := fmt.Sprintf(`{"kind":"artifact-update","taskId":"t","contextId":"c","append":%v,"artifact":{"artifactId":"a","parts":[{"kind":"text","text":"%s"}]}}`, i > 0, text)
			if _, err := fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", req.ID, ev); err != nil {
				return
			}
		}
		fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", req.ID,
			`{"kind":"status-update","taskId":"t","contextId":"c","status":{"state":"completed"},"final":true}`)
	})
	return hs.URL
}

// TestA2AStreamLongerThanOneAnswer: an agent's stream is bounded per event,
// not in all: 4,000 events of 1 KiB (4 MiB in all, more than one answer's
// bound of 2*MaxOutput + 1 MiB) all arrive, while an event over the bound
// still fails the stream.
func TestA2AStreamLongerThanOneAnswer(t *testing.T) {
	t.Parallel()
	b := &A2A{URL: sseAgent(t, 4000, 1<<10), Skill: "s", Timeout: 30 * time.Second, MaxOutput: 64 << 10}
	n := 0
	if err := b.Stream(t.Context(), Invocation{Input: []byte(`{}`)}, func([]byte) error { n++; return nil }); err != nil || n != 4000 {
		t.Fatalf("a long stream: %d events, %v", n, err)
	}
	big := &A2A{URL: sseAgent(t, 1, 2<<20), Skill: "s", Timeout: 30 * time.Second, MaxOutput: 64 << 10}
	if err := big.Stream(t.Context(), Invocation{Input: []byte(`{}`)}, func([]byte) error { return nil }); err == nil {
		t.Fatal("an event over the bound was accepted")
	}
}

// FuzzEventCapped: whatever an agent streams, the cap passes its bytes
// through unchanged up to where it fails, and fails (or not) the same way
// however the bytes arrive, in one read or byte by byte.
func FuzzEventCapped(f *testing.F) {
	for _, s := range []string{"data: {}\n\n", "data: " + strings.Repeat("x", 40) + "\n\ndata: y\n\n", "a\r\n\r\nb\r\n", "\n\n\n", strings.Repeat("z", 100)} {
		f.Add([]byte(s), uint8(16))
	}
	f.Fuzz(func(t *testing.T, in []byte, max uint8) {
		read := func(chunk int) ([]byte, error) {
			c := &eventCapped{rc: io.NopCloser(&chunked{b: in, n: chunk}), max: int64(max)}
			var out []byte
			buf := make([]byte, 7)
			for {
				n, err := c.Read(buf)
				out = append(out, buf[:n]...)
				if err != nil {
					return out, err
				}
			}
		}
		whole, errWhole := read(len(in) + 1)
		bytewise, errBytes := read(1)
		if !bytes.HasPrefix(in, whole) || !bytes.HasPrefix(in, bytewise) {
			t.Fatal("the cap changed the bytes")
		}
		if (errWhole == io.EOF) != (errBytes == io.EOF) {
			t.Fatalf("in one read: %v; byte by byte: %v", errWhole, errBytes)
		}
		if errWhole == io.EOF && !bytes.Equal(whole, in) {
			t.Fatal("a stream that passed lost bytes")
		}
	})
}

// chunked reads b at most n bytes at a time.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}
