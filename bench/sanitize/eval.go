// Package sanitizebench measures internal/sanitize: accuracy on the labelled
// corpus in testdata/corpus (scored exactly as its README.md defines) and
// throughput, each against gitleaks' own detector measured in the same run.
package sanitizebench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/report"
)

// Record is one line of pii-secrets.dev.jsonl.
type Record struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Text  string `json:"text"`
	Spans []Span `json:"spans"`
	// Split is "open" or "sealed" in the held-out corpus (empty in the dev corpus).
	Split string `json:"split,omitempty"`
}

// Span is a labelled value or a finding: category and byte range [Start, End).
type Span struct {
	Category string `json:"category"`
	Start    int    `json:"start"`
	End      int    `json:"end"`
	Rule     string `json:"rule,omitempty"`
}

// LoadCorpus reads a JSON Lines corpus.
func LoadCorpus(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec Record
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				return nil, fmt.Errorf("%s: %w", path, jerr)
			}
			out = append(out, rec)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Counts are true positives, false positives, false negatives and duplicates.
type Counts struct{ TP, FP, FN, Dup int }

func (c *Counts) add(o Counts) { c.TP += o.TP; c.FP += o.FP; c.FN += o.FN; c.Dup += o.Dup }

// Precision is TP/(TP+FP); 1 when there were no findings.
func (c Counts) Precision() float64 {
	if c.TP+c.FP == 0 {
		return 1
	}
	return float64(c.TP) / float64(c.TP+c.FP)
}

// Recall is TP/labelled spans; 1 when there were none.
func (c Counts) Recall() float64 {
	if c.TP+c.FN == 0 {
		return 1
	}
	return float64(c.TP) / float64(c.TP+c.FN)
}

// F1 is the harmonic mean of precision and recall.
func (c Counts) F1() float64 {
	p, r := c.Precision(), c.Recall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

// ScoreRecord scores findings against spans per README.md: findings in order
// of position each claim the unclaimed same-category span they overlap most,
// by at least half the span's length; a finding that only qualifies for an
// already-claimed span is a duplicate; every other finding is a false positive
// of its own category; unclaimed spans are false negatives.
func ScoreRecord(spans, findings []Span) map[string]*Counts {
	out := map[string]*Counts{}
	get := func(c string) *Counts {
		if out[c] == nil {
			out[c] = &Counts{}
		}
		return out[c]
	}
	fs := slices.Clone(findings)
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Start != fs[j].Start {
			return fs[i].Start < fs[j].Start
		}
		return fs[i].End < fs[j].End
	})
	claimed := make([]bool, len(spans))
	for _, f := range fs {
		best, bestOv := -1, 0
		dup := false
		for k, s := range spans {
			if s.Category != f.Category {
				continue
			}
			ov := min(f.End, s.End) - max(f.Start, s.Start)
			if ov <= 0 || 2*ov < s.End-s.Start {
				continue
			}
			if claimed[k] {
				dup = true
				continue
			}
			if ov > bestOv {
				best, bestOv = k, ov
			}
		}
		switch {
		case best >= 0:
			claimed[best] = true
			get(f.Category).TP++
		case dup:
			get(f.Category).Dup++
		default:
			get(f.Category).FP++
		}
	}
	for k, s := range spans {
		if !claimed[k] {
			get(s.Category).FN++
		}
	}
	return out
}

// Detector turns a record's text into findings with corpus category names.
type Detector func(text []byte) []Span

// Sanitizer adapts internal/sanitize.
func Sanitizer(s *sanitize.Sanitizer) Detector {
	return func(text []byte) []Span {
		var out []Span
		for _, f := range s.Scan(text) {
			out = append(out, Span{Category: string(f.Category), Start: f.Start, End: f.End, Rule: f.Rule})
		}
		return out
	}
}

// Gitleaks adapts gitleaks' detector (DetectString, default configuration),
// mapping rule ids to corpus categories and line/column locations back to byte
// offsets of the secret.
func Gitleaks(d *detect.Detector) Detector {
	return func(text []byte) []Span {
		var out []Span
		for _, f := range d.DetectString(string(text)) {
			s, e, ok := GitleaksOffsets(text, f)
			if !ok {
				continue
			}
			out = append(out, Span{Category: string(sanitize.GitleaksCategory(f.RuleID)), Start: s, End: e, Rule: f.RuleID})
		}
		return out
	}
}

// GitleaksOffsets recovers the secret's byte range from a gitleaks finding:
// the match starts at column StartColumn (1-based, bytes) of line StartLine,
// counted from the newline before it, and the secret lies inside the match.
func GitleaksOffsets(text []byte, f report.Finding) (int, int, bool) {
	lineStart := 0
	if f.StartLine > 0 {
		n := 0
		for i, c := range text {
			if c == '\n' {
				n++
				if n == f.StartLine {
					lineStart = i
					break
				}
			}
		}
	}
	ms := lineStart + f.StartColumn - 1
	if ms >= 0 && ms <= len(text) && bytes.HasPrefix(text[ms:], []byte(f.Match)) {
		if k := strings.Index(f.Match, f.Secret); k >= 0 {
			return ms + k, ms + k + len(f.Secret), true
		}
	}
	// Fall back to the first occurrence of the secret on or after the line.
	if k := bytes.Index(text[lineStart:], []byte(f.Secret)); k >= 0 && f.Secret != "" {
		return lineStart + k, lineStart + k + len(f.Secret), true
	}
	return 0, 0, false
}

// Eval is the scored outcome of one detector on the corpus.
type Eval struct {
	Name        string
	PerCategory map[string]*Counts
	PerKind     map[string]*Counts
	Overall     Counts
	// NegRecords is the number of records with no labelled span, and
	// NegFlagged how many of them got at least one finding.
	NegRecords, NegFlagged int
	FPExamples             map[string][]string // category -> a few "id: value" samples (for development)
	FNExamples             map[string][]string
}

// Run scores det on every record.
func Run(name string, recs []Record, det Detector) *Eval {
	ev := &Eval{Name: name, PerCategory: map[string]*Counts{}, PerKind: map[string]*Counts{},
		FPExamples: map[string][]string{}, FNExamples: map[string][]string{}}
	for _, r := range recs {
		text := []byte(r.Text)
		fs := det(text)
		per := ScoreRecord(r.Spans, fs)
		k := ev.PerKind[r.Kind]
		if k == nil {
			k = &Counts{}
			ev.PerKind[r.Kind] = k
		}
		for c, n := range per {
			if ev.PerCategory[c] == nil {
				ev.PerCategory[c] = &Counts{}
			}
			ev.PerCategory[c].add(*n)
			k.add(*n)
			ev.Overall.add(*n)
		}
		if len(r.Spans) == 0 {
			ev.NegRecords++
			if len(fs) > 0 {
				ev.NegFlagged++
			}
		}
		collectExamples(ev, r, text, fs)
	}
	return ev
}

func collectExamples(ev *Eval, r Record, text []byte, fs []Span) {
	clip := func(s, e int) string {
		v := string(text[s:e])
		if len(v) > 60 {
			v = v[:60] + "…"
		}
		return fmt.Sprintf("%s[%s]: %q", r.ID, r.Kind, v)
	}
	for _, f := range fs {
		match := false
		for _, s := range r.Spans {
			ov := min(f.End, s.End) - max(f.Start, s.Start)
			if s.Category == f.Category && ov > 0 && 2*ov >= s.End-s.Start {
				match = true
			}
		}
		if !match && len(ev.FPExamples[f.Category]) < 12 {
			ev.FPExamples[f.Category] = append(ev.FPExamples[f.Category], clip(f.Start, f.End)+" rule="+f.Rule)
		}
	}
	for _, s := range r.Spans {
		match := false
		for _, f := range fs {
			ov := min(f.End, s.End) - max(f.Start, s.Start)
			if s.Category == f.Category && ov > 0 && 2*ov >= s.End-s.Start {
				match = true
			}
		}
		if !match && len(ev.FNExamples[s.Category]) < 12 {
			ctx := max(0, s.Start-30)
			ev.FNExamples[s.Category] = append(ev.FNExamples[s.Category], clip(s.Start, s.End)+fmt.Sprintf(" after %q", string(text[ctx:s.Start])))
		}
	}
}
