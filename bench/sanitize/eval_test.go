package sanitizebench

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/zricethezav/gitleaks/v8/detect"
)

var (
	corpusPath = flag.String("corpus", "/work/shared/corpus/pii-secrets.dev.jsonl", "labelled corpus (JSON Lines)")
	writeEval  = flag.Bool("write", false, "write EVAL-sanitize.md next to this file")
	examples   = flag.Bool("examples", false, "print false positives and negatives per category")
	skipGL     = flag.Bool("nogitleaks", false, "skip the gitleaks baseline (development only)")
	jsonlOut   = flag.String("jsonl", "", "also write the sanitizer's findings as {id, findings} lines to this file")
)

func newSanitizer(tb testing.TB) *sanitize.Sanitizer {
	tb.Helper()
	s, err := sanitize.New(sanitize.Config{PseudonymKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestEval scores the sanitizer and gitleaks alone on the corpus:
//
//	go test ./bench/sanitize -run TestEval -v -args -write
func TestEval(t *testing.T) {
	if raceEnabled {
		// A report, not a check: it asserts nothing, its timings mean nothing
		// under the race detector, and there it takes many minutes.
		t.Skip("evaluation report: run it without -race")
	}
	recs, err := LoadCorpus(*corpusPath)
	if err != nil {
		t.Skipf("corpus: %v", err)
	}
	s := newSanitizer(t)
	t0 := time.Now()
	ours := Run("treaty sanitize", recs, Sanitizer(s))
	dOurs := time.Since(t0)
	gl := &Eval{Name: "gitleaks alone", PerCategory: map[string]*Counts{}, PerKind: map[string]*Counts{}}
	var dGL time.Duration
	if !*skipGL {
		d, err := detect.NewDetectorDefaultConfig()
		if err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		gl = Run("gitleaks alone", recs, Gitleaks(d))
		dGL = time.Since(t0)
	}
	var total int
	for _, r := range recs {
		total += len(r.Text)
	}
	timing := fmt.Sprintf("\n\nWhole corpus (%.1f MB, one goroutine) in the same run: treaty sanitize %v, gitleaks %v.", float64(total)/1e6,
		dOurs.Round(time.Millisecond), dGL.Round(time.Millisecond))
	md := Markdown(ours, gl, len(recs), "go test ./bench/sanitize -run TestEval -v -args -write", timing)
	t.Log("\n" + md)
	if *examples {
		t.Log("\n" + Examples(ours))
	}
	if *writeEval {
		if err := os.WriteFile(filepath.Join(".", "EVAL-sanitize.md"), []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if *jsonlOut != "" {
		var out bytes.Buffer
		for _, r := range recs {
			fs := s.Scan([]byte(r.Text))
			if fs == nil {
				fs = []sanitize.Finding{}
			}
			line, _ := json.Marshal(struct {
				ID       string             `json:"id"`
				Findings []sanitize.Finding `json:"findings"`
			}{r.ID, fs})
			out.Write(append(line, '\n'))
		}
		if err := os.WriteFile(*jsonlOut, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
