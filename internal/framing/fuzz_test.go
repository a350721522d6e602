package framing

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// fuzzBlock is the header block limit FuzzReader reads with: small, so
// the fuzzer reaches it.
const fuzzBlock = 4 << 10

// FuzzReader feeds arbitrary bytes through Reader.Next and the payload
// parsers. It checks that nothing panics, that the payload buffer never
// outgrows the largest frame allowed whatever a length claims, that every
// error is an I/O end or a *Error with a code the transport can send, and
// that every frame read encodes back to the bytes it came from.
func FuzzReader(f *testing.F) {
	f.Add(AppendFrame(nil, TypeHeaders, FlagEnd, 1, AppendField(nil, ":status", "200")))
	f.Add(AppendSettings(nil, Settings{MaxStreams: 100}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), fuzzBlock)
		off := 0
		for range 1000 {
			fr, err := r.Next()
			if cap(r.buf) > max(MaxData, fuzzBlock) {
				t.Fatalf("payload buffer of %d bytes", cap(r.buf))
			}
			if err != nil {
				checkErr(t, err, true)
				return
			}
			n := HeaderLen + len(fr.Payload)
			if got := AppendFrame(nil, fr.Type, fr.Flags, fr.Stream, fr.Payload); !bytes.Equal(got, in[off:off+n]) {
				t.Fatalf("frame at %d encodes to %x, read from %x", off, got, in[off:off+n])
			}
			off += n
			switch fr.Type {
			case TypeHeaders:
				err = ParseFields(fr.Payload, fuzzBlock/2, func(name, value string) error {
					checkField(t, name, value)
					return nil
				})
			case TypeSettings:
				var s Settings
				s, err = ParseSettings(fr.Payload)
				if err == nil && s.MaxStreams == 0 {
					t.Fatal("SETTINGS with no streams accepted")
				}
			case TypeGoAway:
				_, _ = ParseGoAway(fr.Payload)
			case TypeReset, TypeWindow:
				_ = Uint32(fr.Payload)
			case TypePing:
				if len(fr.Payload) != 8 {
					t.Fatalf("PING of %d bytes", len(fr.Payload))
				}
			}
			if err != nil {
				checkErr(t, err, false)
			}
		}
	})
}

// checkErr fails unless err is a *Error with a known code other than
// CodeNone (or, with io set, the end of the input).
func checkErr(t *testing.T, err error, ioOK bool) {
	t.Helper()
	if ioOK && (err == io.EOF || err == io.ErrUnexpectedEOF) {
		return
	}
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *framing.Error", err, err)
	}
	if fe.Code != CodeProtocol && fe.Code != CodeTooLarge {
		t.Fatalf("error %v with code %s", err, fe.Code)
	}
	if fe.Msg == "" {
		t.Fatal("error without a message")
	}
}

// checkField fails unless name and value follow the rules, written out
// here independently of the parser: a lower-case token (after a leading
// colon for a pseudo-field), a value without control bytes but HTAB.
func checkField(t *testing.T, name, value string) {
	t.Helper()
	if !refName(name) {
		t.Fatalf("invalid name %q accepted", name)
	}
	if !refValue(value) {
		t.Fatalf("invalid value %q of %q accepted", value, name)
	}
}

const tchar = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"

func refName(name string) bool {
	name = strings.TrimPrefix(name, ":")
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !strings.Contains(tchar, name[i:i+1]) {
			return false
		}
	}
	return true
}

func refValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzFields: two fields appended with AppendField parse back exactly when
// they follow the rules (checked by the reference above), and are refused
// with CodeProtocol otherwise.
func FuzzFields(f *testing.F) {
	f.Add(":path", "/x", "x-a", "1")
	f.Add("x-a", "1", ":path", "/")
	f.Add("X-A", "1", "b", "")
	f.Add("a", "v\x00", "b", "\r\n")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		block := AppendField(AppendField(nil, n1, v1), n2, v2)
		var got []string
		err := ParseFields(block, 1<<30, func(name, value string) error {
			got = append(got, name, value)
			return nil
		})
		pseudo1, pseudo2 := strings.HasPrefix(n1, ":"), strings.HasPrefix(n2, ":")
		valid := refName(n1) && refName(n2) && refValue(v1) && refValue(v2) && !(pseudo2 && !pseudo1)
		if !valid {
			if err == nil {
				t.Fatalf("invalid fields %q=%q %q=%q accepted", n1, v1, n2, v2)
			}
			checkErr(t, err, false)
			return
		}
		if err != nil {
			t.Fatalf("valid fields %q=%q %q=%q refused: %v", n1, v1, n2, v2, err)
		}
		if want := []string{n1, v1, n2, v2}; strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != 4 {
			t.Fatalf("parsed %q, want %q", got, want)
		}
		// The list limit: one byte short of the measured size is too large.
		size := len(n1) + len(v1) + len(n2) + len(v2) + 2*FieldOverhead
		err = ParseFields(block, size-1, func(string, string) error { return nil })
		var fe *Error
		if !errors.As(err, &fe) || fe.Code != CodeTooLarge {
			t.Fatalf("block of list size %d under a limit of %d: %v", size, size-1, err)
		}
		if err := ParseFields(block, size, func(string, string) error { return nil }); err != nil {
			t.Fatalf("block of list size %d at its limit: %v", size, err)
		}
	})
}
