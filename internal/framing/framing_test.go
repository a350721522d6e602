package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// frame builds one frame with a header claiming n payload bytes and the
// given payload (which may be shorter or longer than n).
func frame(t Type, f Flags, stream uint32, n uint32, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, n)
	b = append(b, byte(t), byte(f))
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}

func field(name, value string) []byte { return AppendField(nil, name, value) }

// wantCode fails unless err is a *Error with code c.
func wantCode(t *testing.T, err error, c Code) {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T), want a *framing.Error", err, err)
	}
	if fe.Code != c {
		t.Fatalf("error %v has code %s, want %s", err, fe.Code, c)
	}
}

// TestReaderRoundTrip: every frame the Append functions write reads back as written.
func TestReaderRoundTrip(t *testing.T) {
	var b []byte
	hdr := AppendField(AppendField(nil, ":status", "200"), "x-a", "b")
	b = AppendFrame(b, TypeHeaders, FlagEnd, 1, hdr)
	b = AppendFrame(b, TypeData, 0, 3, bytes.Repeat([]byte("d"), MaxData))
	b = AppendFrame(b, TypeData, FlagEnd, 3, nil)
	b = AppendUint32Frame(b, TypeReset, 5, uint32(CodeCancel))
	b = AppendUint32Frame(b, TypeWindow, 7, 12345)
	b = AppendFrame(b, TypePing, FlagAck, 0, []byte("12345678"))
	b = AppendGoAway(b, 9, CodeTooLarge)
	b = AppendSettings(b, Settings{MaxStreams: 17})
	r := NewReader(bytes.NewReader(b), 1<<10)
	want := []struct {
		t      Type
		f      Flags
		stream uint32
		n      int
	}{
		{TypeHeaders, FlagEnd, 1, len(hdr)}, {TypeData, 0, 3, MaxData}, {TypeData, FlagEnd, 3, 0},
		{TypeReset, 0, 5, 4}, {TypeWindow, 0, 7, 4}, {TypePing, FlagAck, 0, 8}, {TypeGoAway, 0, 0, 8}, {TypeSettings, 0, 0, 4},
	}
	for i, w := range want {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Type != w.t || f.Flags != w.f || f.Stream != w.stream || len(f.Payload) != w.n {
			t.Fatalf("frame %d: %s flags %d stream %d len %d, want %s %d %d %d", i, f.Type, f.Flags, f.Stream, len(f.Payload), w.t, w.f, w.stream, w.n)
		}
		switch f.Type {
		case TypeReset:
			if Code(Uint32(f.Payload)) != CodeCancel {
				t.Fatalf("RESET code %d", Uint32(f.Payload))
			}
		case TypeWindow:
			if Uint32(f.Payload) != 12345 {
				t.Fatalf("WINDOW %d", Uint32(f.Payload))
			}
		case TypeGoAway:
			if last, c := ParseGoAway(f.Payload); last != 9 || c != CodeTooLarge {
				t.Fatalf("GOAWAY %d %s", last, c)
			}
		case TypeSettings:
			if s, err := ParseSettings(f.Payload); err != nil || s.MaxStreams != 17 {
				t.Fatalf("SETTINGS %+v %v", s, err)
			}
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestReaderRefuses: frame headers that break a rule are *Error with the
// code the transport answers with, before any payload is read.
func TestReaderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		code Code
	}{
		{"unknown type", frame(Type(7), 0, 1, 0, nil), CodeProtocol},
		{"type 255", frame(Type(255), 0, 1, 0, nil), CodeProtocol},
		{"HEADERS on stream 0", frame(TypeHeaders, 0, 0, 0, nil), CodeProtocol},
		{"DATA on stream 0", frame(TypeData, 0, 0, 0, nil), CodeProtocol},
		{"RESET on stream 0", frame(TypeReset, 0, 0, 4, make([]byte, 4)), CodeProtocol},
		{"PING on stream 1", frame(TypePing, 0, 1, 8, make([]byte, 8)), CodeProtocol},
		{"GOAWAY on stream 3", frame(TypeGoAway, 0, 3, 8, make([]byte, 8)), CodeProtocol},
		{"SETTINGS on stream 5", frame(TypeSettings, 0, 5, 4, make([]byte, 4)), CodeProtocol},
		{"short RESET", frame(TypeReset, 0, 1, 3, make([]byte, 3)), CodeProtocol},
		{"long WINDOW", frame(TypeWindow, 0, 1, 5, make([]byte, 5)), CodeProtocol},
		{"short PING", frame(TypePing, 0, 0, 0, nil), CodeProtocol},
		{"long GOAWAY", frame(TypeGoAway, 0, 0, 9, make([]byte, 9)), CodeProtocol},
		{"empty SETTINGS", frame(TypeSettings, 0, 0, 0, nil), CodeProtocol},
		{"DATA over MaxData", frame(TypeData, 0, 1, MaxData+1, nil), CodeTooLarge},
		{"DATA of 4 GiB", frame(TypeData, 0, 1, 1<<32-1, nil), CodeTooLarge},
		{"HEADERS over the block limit", frame(TypeHeaders, 0, 1, 1<<10+1, nil), CodeTooLarge},
		{"HEADERS of 4 GiB", frame(TypeHeaders, 0, 1, 1<<32-1, nil), CodeTooLarge},
		{"PING of 4 GiB", frame(TypePing, 0, 0, 1<<32-1, nil), CodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.in), 1<<10)
			_, err := r.Next()
			wantCode(t, err, tc.code)
			if !IsProtocolError(err) {
				t.Fatalf("IsProtocolError(%v) = false", err)
			}
			if cap(r.buf) != 0 {
				t.Fatalf("refused frame allocated a %d-byte buffer", cap(r.buf))
			}
		})
	}
}

// TestReaderShort: a stream cut inside a frame is io.ErrUnexpectedEOF, at
// a frame boundary io.EOF; neither is a protocol error.
func TestReaderShort(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"cut header", frame(TypeData, 0, 1, 4, nil)[:5], io.ErrUnexpectedEOF},
		{"cut payload", frame(TypeData, 0, 1, 4, []byte("ab")), io.ErrUnexpectedEOF},
		{"claimed block, no payload", frame(TypeHeaders, 0, 1, 1<<10, nil), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.in), 1<<10).Next()
			if err != tc.want || IsProtocolError(err) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestReaderBlockLimit: NewReader caps the block limit at MaxHeaderBlock,
// and the payload buffer never outgrows the largest frame allowed,
// whatever the length fields claim.
func TestReaderBlockLimit(t *testing.T) {
	r := NewReader(bytes.NewReader(frame(TypeHeaders, 0, 1, MaxHeaderBlock+1, nil)), 1<<30)
	_, err := r.Next()
	wantCode(t, err, CodeTooLarge)

	var in []byte
	for i := range 50 {
		in = append(in, frame(TypeData, 0, uint32(2*i+1), MaxData, make([]byte, MaxData))...)
		in = append(in, frame(TypeHeaders, 0, uint32(2*i+1), 2<<10, make([]byte, 2<<10))...)
	}
	r = NewReader(bytes.NewReader(in), 4<<10)
	for {
		if _, err := r.Next(); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		if cap(r.buf) > MaxData {
			t.Fatalf("buffer grew to %d bytes", cap(r.buf))
		}
	}
	// Frames after the first big one reuse the buffer: no allocation.
	rd := bytes.NewReader(in)
	r = NewReader(rd, 4<<10)
	allocs := testing.AllocsPerRun(20, func() {
		rd.Reset(in)
		r.r.Reset(rd)
		for {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
	if allocs > 1 {
		t.Fatalf("%.1f allocations per 100 frames, want at most 1", allocs)
	}
}

// TestParseFields: field rules and the list limit.
func TestParseFields(t *testing.T) {
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	ok := cat(field(":method", "GET"), field(":path", "/x"), field("x-a", "1"), field("x-a", ""), field("content-type", "a/b; q=\"1\"\t"))
	var got []string
	if err := ParseFields(ok, 1<<10, func(n, v string) error { got = append(got, n+"="+v); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := ":method=GET :path=/x x-a=1 x-a= content-type=a/b; q=\"1\"\t"; strings.Join(got, " ") != want {
		t.Fatalf("fields %q, want %q", strings.Join(got, " "), want)
	}
	if err := ParseFields(nil, 0, func(string, string) error { t.Fatal("field in an empty block"); return nil }); err != nil {
		t.Fatalf("empty block: %v", err)
	}
	stop := errors.New("stop")
	if err := ParseFields(ok, 1<<10, func(string, string) error { return stop }); err != stop {
		t.Fatalf("fn's error came back as %v", err)
	}

	overflow := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		code Code
	}{
		{"upper-case name", field("X-A", "1"), 1 << 10, CodeProtocol},
		{"upper-case pseudo", field(":Path", "/"), 1 << 10, CodeProtocol},
		{"empty name", field("", "1"), 1 << 10, CodeProtocol},
		{"bare colon", field(":", "1"), 1 << 10, CodeProtocol},
		{"space in name", field("x a", "1"), 1 << 10, CodeProtocol},
		{"colon inside name", field("x:a", "1"), 1 << 10, CodeProtocol},
		{"pseudo after regular", cat(field("x-a", "1"), field(":path", "/")), 1 << 10, CodeProtocol},
		{"NUL in value", field("x-a", "a\x00b"), 1 << 10, CodeProtocol},
		{"CR in value", field("x-a", "a\rb"), 1 << 10, CodeProtocol},
		{"LF in value", field("x-a", "a\nb"), 1 << 10, CodeProtocol},
		{"DEL in value", field("x-a", "a\x7fb"), 1 << 10, CodeProtocol},
		{"name past the end", []byte{5, 'a', 'b'}, 1 << 10, CodeProtocol},
		{"value past the end", []byte{1, 'a', 9, 'v'}, 1 << 10, CodeProtocol},
		{"no value length", []byte{1, 'a'}, 1 << 10, CodeProtocol},
		{"cut name length", []byte{0x80}, 1 << 10, CodeProtocol},
		{"name length overflow", overflow, 1 << 10, CodeProtocol},
		{"value length overflow", append([]byte{1, 'a'}, overflow...), 1 << 10, CodeProtocol},
		{"huge name length", binary.AppendUvarint(nil, 1<<62), 1 << 10, CodeProtocol},
		{"over the list limit", field("x-a", strings.Repeat("v", 100)), 100 + 3 + FieldOverhead - 1, CodeTooLarge},
		{"many empty fields", bytes.Repeat(field("a", ""), 40), 32 * 33, CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := ParseFields(tc.in, tc.max, func(string, string) error { calls++; return nil })
			wantCode(t, err, tc.code)
		})
	}
	// Exactly at the limit is fine.
	if err := ParseFields(field("x-a", strings.Repeat("v", 100)), 100+3+FieldOverhead, func(string, string) error { return nil }); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
}

// TestParseSettings: no streams is a protocol error; a payload of the wrong
// size (a caller that skipped Next) is one too, not a panic.
func TestParseSettings(t *testing.T) {
	_, err := ParseSettings(make([]byte, 4))
	wantCode(t, err, CodeProtocol)
	for _, p := range [][]byte{nil, {1}, {0, 0, 0, 1, 0}} {
		if _, err := ParseSettings(p); err == nil {
			t.Fatalf("ParseSettings(%x) accepted", p)
		}
	}
}

// TestCodeStrings: every code and type has a name; unknown ones say their number.
func TestCodeStrings(t *testing.T) {
	for c := CodeNone; c <= CodeTimeout; c++ {
		if strings.HasPrefix(c.String(), "code(") {
			t.Fatalf("code %d has no name", c)
		}
	}
	if Code(99).String() != "code(99)" || Type(9).String() != "type(9)" {
		t.Fatalf("unknown names %q %q", Code(99), Type(9))
	}
	for ty := Type(0); ty < numTypes; ty++ {
		if strings.HasPrefix(ty.String(), "type(") {
			t.Fatalf("type %d has no name", ty)
		}
	}
}
