package jsonsyntax

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkValid compares Valid with encoding/json.Valid in one run, on what
// the backends' output check and the caller's result check see per call.
func BenchmarkValid(b *testing.B) {
	for _, doc := range []struct {
		name string
		data []byte
	}{
		// bench/callpath's echo payload.
		{"blob-1KiB", []byte(`{"blob":"` + strings.Repeat("x", 1024-11) + `"}`)},
		// A structured result: keys, prose with spaces, numbers, nesting.
		{"structured-1KiB", []byte(`{"id":"c-1842","ok":true,"items":[` + strings.Repeat(`{"n":12.5,"text":"the quick brown fox jumps over the lazy dog","tags":["a","b"]},`, 11) + `null]}`)},
		// A small answer.
		{"small", []byte(`{"answer":42,"unit":"ms"}`)},
	} {
		if !json.Valid(doc.data) {
			b.Fatalf("%s is not JSON", doc.name)
		}
		for _, v := range []struct {
			name  string
			valid func([]byte) bool
		}{{"encoding-json", json.Valid}, {"jsonsyntax", Valid}} {
			b.Run(doc.name+"/"+v.name, func(b *testing.B) {
				b.SetBytes(int64(len(doc.data)))
				for b.Loop() {
					if !v.valid(bytes.TrimSpace(doc.data)) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}
