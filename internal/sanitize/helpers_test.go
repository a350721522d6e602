package sanitize

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Test values are generated, not written out, so the repository holds no
// string that looks like a live credential.

const (
	alnum    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperNum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	hexLower = "0123456789abcdef"
	b64url   = alnum + "_-"
)

// fake returns n characters of alphabet drawn from a ChaCha8 stream seeded
// with seed, so every run sees the same values.
func fake(seed uint64, alphabet string, n int) string {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	r := rand.New(rand.NewChaCha8(s))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// luhnComplete appends the check digit that makes digits pass Luhn.
func luhnComplete(digits string) string {
	for c := byte('0'); c <= '9'; c++ {
		if luhn([]byte(digits + string(c))) {
			return digits + string(c)
		}
	}
	panic("unreachable")
}

// ibanFor builds a valid IBAN for country and BBAN.
func ibanFor(country, bban string) string {
	for ck := 2; ck <= 98; ck++ {
		s := fmt.Sprintf("%s%02d%s", country, ck, bban)
		if ibanMod97([]byte(s)) {
			return s
		}
	}
	panic("no check digits")
}

func group4(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

var testKey = bytes.Repeat([]byte{0x42}, 32)

func newTest(t testing.TB) *Sanitizer {
	t.Helper()
	s, err := New(Config{PseudonymKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// found returns "category value" for every finding, for readable failures.
func found(data []byte, fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %q", f.Category, data[f.Start:f.End]))
	}
	return out
}

// hasFinding reports whether some finding of cat covers exactly value's first
// occurrence in data.
func hasFinding(data []byte, fs []Finding, cat Category, value string) bool {
	i := bytes.Index(data, []byte(value))
	if i < 0 {
		return false
	}
	return slices.ContainsFunc(fs, func(f Finding) bool {
		return f.Category == cat && f.Start == i && f.End == i+len(value)
	})
}

// overlaps reports whether some finding (of any category) touches value.
func overlaps(data []byte, fs []Finding, value string) bool {
	i := bytes.Index(data, []byte(value))
	if i < 0 {
		return false
	}
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Start < i+len(value) && i < f.End })
}
