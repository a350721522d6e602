package wire

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestReadBody(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		max     int64
		wantErr bool
	}{
		{"empty", 0, 10, false},
		{"at limit", 10, 10, false},
		{"one over", 11, 10, true},
		{"far over", 1 << 20, 10, true},
		{"default limit", 1 << 20, 0, false},
		{"over default", 1<<20 + 1, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingReader{r: bytes.NewReader(make([]byte, tc.size))}
			b, err := ReadBody(src, tc.max)
			if !tc.wantErr {
				if err != nil || len(b) != tc.size {
					t.Fatalf("ReadBody = %d bytes, %v", len(b), err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want *LimitError", err)
			}
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			if le.Limit != LimitMaxBodyBytes || le.Max != max || le.Got != -1 {
				t.Fatalf("LimitError = %+v", le)
			}
			if src.n > max+1 {
				t.Fatalf("read %d bytes, never more than max+1 = %d", src.n, max+1)
			}
			want := "wire: body exceeds limit max_body_bytes=" + strconv.FormatInt(max, 10)
			if err.Error() != want {
				t.Fatalf("message %q, want %q", err.Error(), want)
			}
		})
	}
}

// ReadBodySized keeps ReadBody's limit whatever the announced size says (a
// lie either way), allocates one buffer for a truthful small body, and never
// allocates on the word of a large announcement.
func TestReadBodySized(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		announced int64
		max       int64
		wantErr   bool
	}{
		{"truthful", 1000, 1000, 4096, false},
		{"announced less", 3000, 10, 4096, false},
		{"announced more", 10, 3000, 4096, false},
		{"over the limit, announced under", 5000, 100, 4096, true},
		{"announced over the limit", 100, 1 << 30, 4096, false},
		{"unknown", 3000, -1, 4096, false},
		{"empty", 0, 0, 4096, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("abcdefg"), tc.size/7+1)[:tc.size]
			src := &countingReader{r: bytes.NewReader(data)}
			b, err := ReadBodySized(src, tc.max, tc.announced)
			if tc.wantErr {
				var le *LimitError
				if !errors.As(err, &le) || le.Max != tc.max {
					t.Fatalf("err = %v, want the max_body_bytes LimitError", err)
				}
				if src.n > tc.max+1 {
					t.Fatalf("read %d bytes, never more than max+1", src.n)
				}
				return
			}
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("ReadBodySized = %d bytes, %v; want the %d bytes sent", len(b), err, tc.size)
			}
		})
	}
	body := bytes.Repeat([]byte("x"), 1024)
	sized := testing.AllocsPerRun(100, func() { _, _ = ReadBodySized(bytes.NewReader(body), 1<<20, 1024) })
	grown := testing.AllocsPerRun(100, func() { _, _ = ReadBody(bytes.NewReader(body), 1<<20) })
	if sized >= grown {
		t.Errorf("a truthful 1 KiB body: %v allocations, no fewer than ReadBody's %v", sized, grown)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 10 {
		_, _ = ReadBodySized(bytes.NewReader(body), 1<<20, 1<<20)
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / 10; per > 64<<10 {
		t.Errorf("a 1 MiB announcement of a 1 KiB body allocated %d bytes; a lie must not buy a large buffer", per)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestLimitsValidate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	if (Limits{}).WithDefaults() != DefaultLimits() {
		t.Fatal("WithDefaults of zero is not DefaultLimits")
	}
	d := DefaultLimits()
	if d.MaxBodyBytes != 1<<20 || d.MaxHeaderBytes != 16<<10 || d.TimeToFirstByte != 10*time.Second ||
		d.CallTimeout != 30*time.Second || d.MaxConcurrentPerPeer != 64 {
		t.Fatalf("defaults changed: %+v", d)
	}
	tests := []struct {
		name  string
		mod   func(*Limits)
		field string
	}{
		{"zero body", func(l *Limits) { l.MaxBodyBytes = 0 }, "MaxBodyBytes"},
		{"huge body", func(l *Limits) { l.MaxBodyBytes = 1 << 31 }, "MaxBodyBytes"},
		{"tiny header", func(l *Limits) { l.MaxHeaderBytes = 100 }, "MaxHeaderBytes"},
		{"negative ttfb", func(l *Limits) { l.TimeToFirstByte = -1 }, "TimeToFirstByte"},
		{"long call", func(l *Limits) { l.CallTimeout = 2 * time.Hour }, "CallTimeout"},
		{"zero concurrency", func(l *Limits) { l.MaxConcurrentPerPeer = 0 }, "MaxConcurrentPerPeer"},
		{"zero events", func(l *Limits) { l.MaxStreamEvents = 0 }, "MaxStreamEvents"},
		{"tiny event", func(l *Limits) { l.MaxEventBytes = 10 }, "MaxEventBytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := DefaultLimits()
			tc.mod(&l)
			err := l.Validate()
			if err == nil || !strings.Contains(err.Error(), "Limits."+tc.field+" = ") || !strings.Contains(err.Error(), "want ") {
				t.Fatalf("Validate = %v, want an error naming %s, its value and range", err, tc.field)
			}
		})
	}
}

func TestLimitErrorMessages(t *testing.T) {
	tests := []struct {
		e    LimitError
		want string
	}{
		{LimitError{LimitMaxBodyBytes, 1048576, -1}, "wire: body exceeds limit max_body_bytes=1048576"},
		{LimitError{LimitMaxConcurrentPerPeer, 64, 65}, "wire: concurrent calls exceeds limit max_concurrent_per_peer=64 (got 65)"},
		{LimitError{LimitMaxEventBytes, 65536, -1}, "wire: event exceeds limit max_event_bytes=65536"},
		{LimitError{"x", 1, 2}, "wire: value exceeds limit x=1 (got 2)"},
	}
	for _, tc := range tests {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestPeerLimiter(t *testing.T) {
	k := testKeys(t)
	l, err := NewPeerLimiter(2)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := l.Acquire(k.alice.Public())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.Acquire(k.alice.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire(k.alice.Public())
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitMaxConcurrentPerPeer || le.Max != 2 || le.Got != 3 {
		t.Fatalf("third Acquire = %v", err)
	}
	// Another peer is unaffected.
	rb, err := l.Acquire(k.bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	rb()
	r1()
	r1() // extra release is ignored
	if l.InFlight(k.alice.Public()) != 1 {
		t.Fatalf("InFlight = %d, want 1", l.InFlight(k.alice.Public()))
	}
	if _, err := l.Acquire(k.alice.Public()); err != nil {
		t.Fatal(err)
	}
	r2()
	if _, err := NewPeerLimiter(-1); err == nil {
		t.Fatal("NewPeerLimiter(-1) accepted")
	}
}

func TestFailureEnvelope(t *testing.T) {
	f := FailureOf("wire", &LimitError{Limit: LimitMaxBodyBytes, Max: 1 << 20, Got: -1})
	b := EncodeFailure(f)
	if string(b) != `{"stage":"wire","reason":"limit_exceeded","limit":{"limit":"max_body_bytes","max":1048576,"got":-1}}` {
		t.Fatalf("EncodeFailure = %s", b)
	}
	back, err := DecodeFailure(b)
	if err != nil || back.Limit == nil || *back.Limit != *f.Limit || back.Reason != f.Reason {
		t.Fatalf("DecodeFailure = %+v, %v", back, err)
	}
	if got := FailureOf("policy", errors.New("secret detail")); got.Reason != "internal" || got.Stage != "policy" {
		t.Fatalf("FailureOf(plain) = %+v", got)
	}
	if got := FailureOf("wire", fail(ReasonReplayed, "x")); got.Reason != "replayed" {
		t.Fatalf("FailureOf(replayed) = %+v", got)
	}
	bad := []string{
		``, `null`, `{}`, `[]`, `{"stage":"wire"}`, `{"stage":"Wire","reason":"x"}`,
		`{"stage":"wire","reason":"x"} {}`, `{"stage":"wire","reason":"x\u200b"}`,
		`{"stage":"wire","reason":"x","limit":{"limit":"max body","max":1,"got":1}}`,
		`{"stage":"wire","reason":"x","limit":{"limit":"m","max":-1,"got":1}}`,
		`{"stage":"wire","reason":"x","limit":{"limit":"m","max":1,"got":-2}}`,
		`{"stage":"wire","reason":"` + strings.Repeat("a", 65) + `"}`,
		`{"stage":"wire","reason":"x","pad":"` + strings.Repeat("a", 2000) + `"}`,
	}
	for _, s := range bad {
		if _, err := DecodeFailure([]byte(s)); err == nil {
			t.Errorf("DecodeFailure(%.60q) accepted", s)
		} else {
			wantReason(t, err, ReasonMalformed)
		}
	}
	if _, err := DecodeFailure([]byte(`{"stage":"wire","reason":"x","future":1}`)); err != nil {
		t.Errorf("unknown field refused: %v", err)
	}
}

func TestStatusFor(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{&LimitError{Limit: LimitMaxBodyBytes}, 413},
		{&LimitError{Limit: LimitMaxHeaderBytes}, 431},
		{&LimitError{Limit: LimitMaxConcurrentPerPeer}, 429},
		{&LimitError{Limit: LimitCallTimeout}, 504},
		{fail(ReasonBadAudience, ""), 421},
		{fail(ReasonBadSignature, ""), 401},
		{fail(ReasonReplayed, ""), 409},
		{fail(ReasonReplayCacheFull, ""), 503},
		{fail(ReasonMalformed, ""), 400},
		{errors.New("x"), 500},
	}
	for _, tc := range tests {
		if got := StatusFor(tc.err); got != tc.want {
			t.Errorf("StatusFor(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// SetMax keeps the calls in flight: lowered below them, it refuses the
// peer's next call until enough of them end.
func TestPeerLimiterSetMaxKeepsCallsInFlight(t *testing.T) {
	k := testKeys(t)
	l, err := NewPeerLimiter(4)
	if err != nil {
		t.Fatal(err)
	}
	var rs []func()
	for range 3 {
		r, err := l.Acquire(k.alice.Public())
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if err := l.SetMax(2); err != nil || l.Max() != 2 {
		t.Fatalf("SetMax(2) = %v, Max %d", err, l.Max())
	}
	if _, err := l.Acquire(k.alice.Public()); err == nil {
		t.Fatal("a call over the lowered limit got a slot")
	}
	rs[0]()
	rs[1]()
	if _, err := l.Acquire(k.alice.Public()); err != nil {
		t.Fatalf("one call in flight under a limit of 2: %v", err)
	}
	if err := l.SetMax(1 << 17); err == nil || l.Max() != 2 {
		t.Fatalf("SetMax out of range = %v, Max %d; want an error and the limit unchanged", err, l.Max())
	}
}
