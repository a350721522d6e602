package mcpframe

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReader: the bound is per message, not per line: a message split over
// short lines is cut, messages of exactly the limit pass, and bytes in
// strings (brackets, escaped quotes) do not end a message.
func TestReader(t *testing.T) {
	read := func(in string, max int) (string, bool) {
		var over atomic.Bool
		r := &Reader{R: strings.NewReader(in), Max: max, Over: &over}
		out, err := io.ReadAll(r)
		if err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%q: %v", in, err)
		}
		if (err != nil) != over.Load() {
			t.Fatalf("%q: err %v but over %v", in, err, over.Load())
		}
		if err != nil {
			if n, err := r.Read(make([]byte, 8)); n != 0 || !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%q: a read after the refusal: %d, %v", in, n, err)
			}
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
	if _, over := read(strings.Repeat(" ", 100), 50); !over {
		t.Error("endless whitespace between messages passed")
	}
}

// FuzzReader: on any bytes the reader never passes on a message longer than
// Max, never passes on bytes it did not read, and stops early only with
// ErrTooLarge.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a\"]}"}]}}`+"\n"), 64)
	f.Add([]byte("[1,\n2,\n3]\n{}\n"), 4)
	f.Add([]byte(`]]]]{{{{"\\\"`), 3)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		r := &Reader{R: oneByte{bytes.NewReader(in)}, Max: max}
		out, err := io.ReadAll(r)
		if err != nil && !errors.Is(err, ErrTooLarge) {
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

// oneByte reads a byte at a time, so state carries across reads.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// TestReaderMaxNow: MaxNow, asked at every Read, overrides Max: a message
// over Max passes while it is raised, and the next one over Max is refused
// once it falls.
func TestReaderMaxNow(t *testing.T) {
	msg := `{"a":"` + strings.Repeat("x", 100) + `"}` + "\n"
	raised := true
	r := &Reader{R: strings.NewReader(msg + msg), Max: 50, MaxNow: func() int {
		if raised {
			return 200
		}
		return 50
	}}
	b := make([]byte, len(msg))
	if n, err := io.ReadFull(r, b); err != nil || string(b[:n]) != msg {
		t.Fatalf("raised: %q, %v", b[:n], err)
	}
	raised = false
	if _, err := io.ReadAll(r); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("lowered: %v, want ErrTooLarge", err)
	}
}

// gatedReader tells when a Read has begun (entered) and hands out its bytes
// only once released: a Read blocked on an idle pipe.
type gatedReader struct {
	entered, release chan struct{}
	r                io.Reader
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.r.Read(p)
}

// TestReaderMaxNowAfterBlockedRead: the bound is the one in force when the
// bytes come, not when the Read that returns them began. The transport's
// read loop waits in Read on an idle server; a tools/list sent meanwhile
// raises the bound, and its answer arrives through that same Read: it was
// held to the bound asked for before the wait, and a long page was refused.
func TestReaderMaxNowAfterBlockedRead(t *testing.T) {
	msg := `{"a":"` + strings.Repeat("x", 100) + `"}` + "\n"
	var raised atomic.Bool
	g := &gatedReader{entered: make(chan struct{}), release: make(chan struct{}), r: strings.NewReader(msg)}
	r := &Reader{R: g, Max: 50, MaxNow: func() int {
		if raised.Load() {
			return 200
		}
		return 50
	}}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	b := make([]byte, len(msg))
	go func() {
		n, err := r.Read(b)
		done <- result{n, err}
	}()
	<-g.entered // the Read waits for bytes
	raised.Store(true)
	close(g.release)
	res := <-done
	if res.err != nil || string(b[:res.n]) != msg {
		t.Fatalf("bound raised during a blocked Read: %d bytes, %v", res.n, res.err)
	}
}
