package sanitizebench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	heldoutPath = "../../testdata/corpus/pii-secrets.heldout.jsonl"
	// Errors of the sealed part are never printed: it is evaluated, not inspected.
	heldoutExamples = false
)

func init() {
	if v := os.Getenv("TREATY_HELDOUT_EXAMPLES"); v == "open" {
		heldoutExamples = true
	}
}

func splitOf(recs []Record, split string) []Record {
	var out []Record
	for _, r := range recs {
		if split == "" || r.Split == split {
			out = append(out, r)
		}
	}
	return out
}

// TestHeldout scores the sanitizer on the held-out corpus, open and sealed parts
// apart, and checks the targets of issue 10 on the whole of it: precision >= 0.99,
// recall >= 0.97, recall >= 0.90 in every category. With -write it writes
// EVAL-sanitize-heldout.md; TREATY_HELDOUT_EXAMPLES=open prints only the open
// part's figures and errors (never the sealed part's) and checks no target.
//
//	go test ./bench/sanitize -run TestHeldout -v -args -write
func TestHeldout(t *testing.T) {
	recs, err := LoadCorpus(heldoutPath)
	if err != nil {
		t.Fatalf("the held-out corpus ships with the repository (testdata/corpus): %v", err)
	}
	s := newSanitizer(t)
	evs := map[string]*Eval{}
	for _, sp := range []string{"open", "sealed", ""} {
		evs[sp] = Run("treaty sanitize", splitOf(recs, sp), Sanitizer(s))
	}
	if heldoutExamples {
		// Development: the open part's figures and errors only, no targets.
		o := evs["open"].Overall
		t.Logf("open part: TP %d FP %d FN %d precision %.3f recall %.3f", o.TP, o.FP, o.FN, o.Precision(), o.Recall())
		for _, c := range corpusCategories {
			if n := evs["open"].PerCategory[c]; n != nil && (n.FP > 0 || n.FN > 0) {
				t.Logf("  %-20s P %.3f R %.3f FP %d FN %d", c, n.Precision(), n.Recall(), n.FP, n.FN)
			}
		}
		t.Log("\n" + Examples(evs["open"]))
		return
	}
	md := HeldoutMarkdown(evs["open"], evs["sealed"], evs[""], len(recs))
	t.Log("\n" + md)
	if *writeEval {
		if err := os.WriteFile(filepath.Join(".", "EVAL-sanitize-heldout.md"), []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	all := evs[""]
	if p := all.Overall.Precision(); p < 0.99 {
		t.Errorf("held-out precision %.3f below 0.99", p)
	}
	if r := all.Overall.Recall(); r < 0.97 {
		t.Errorf("held-out recall %.3f below 0.97", r)
	}
	for _, c := range corpusCategories {
		if n := all.PerCategory[c]; n != nil && n.TP+n.FN > 0 && n.Recall() < 0.90 {
			t.Errorf("held-out %s: recall %.3f below 0.90 (TP %d, FN %d)", c, n.Recall(), n.TP, n.FN)
		}
	}
}

// HeldoutMarkdown renders the held-out figures: overall and per category for the
// open part, the sealed part and both.
func HeldoutMarkdown(open, sealed, all *Eval, nrec int) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("## Outbound sanitizer, held-out corpus\n\n")
	w("Corpus: `testdata/corpus/pii-secrets.heldout.jsonl`, %d records, %d labelled spans (how it was made: testdata/corpus/README.md). ",
		nrec, all.Overall.TP+all.Overall.FN)
	w("Scored as the dev corpus is. **open**: the part whose errors could be looked at while improving the detectors; **sealed**: evaluated only.\n\n")
	w("Reproduce: `go test ./bench/sanitize -run TestHeldout -v -args -write`\n\n")
	w("| part | spans | TP | FP | FN | precision | recall | F1 | lowest category recall |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, row := range []struct {
		name string
		e    *Eval
	}{{"open", open}, {"sealed", sealed}, {"all", all}} {
		o := row.e.Overall
		low, lowc := 2.0, ""
		for _, c := range corpusCategories {
			if n := row.e.PerCategory[c]; n != nil && n.TP+n.FN > 0 && n.Recall() < low {
				low, lowc = n.Recall(), c
			}
		}
		w("| %s | %d | %d | %d | %d | %s | %s | %s | %s %s |\n", row.name, o.TP+o.FN, o.TP, o.FP, o.FN,
			pct(o.Precision()), pct(o.Recall()), pct(o.F1()), pct(low), lowc)
	}
	w("\n### Per category\n\n| category | spans open | P open | R open | spans sealed | P sealed | R sealed | FP all | FN all |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	get := func(e *Eval, c string) *Counts {
		if n := e.PerCategory[c]; n != nil {
			return n
		}
		return &Counts{}
	}
	for _, c := range corpusCategories {
		o, s, a := get(open, c), get(sealed, c), get(all, c)
		w("| %s | %d | %s | %s | %d | %s | %s | %d | %d |\n", c, o.TP+o.FN, prec(o), pct(o.Recall()), s.TP+s.FN, prec(s), pct(s.Recall()), a.FP, a.FN)
	}
	for c, n := range all.PerCategory {
		if !strings.Contains(strings.Join(corpusCategories, ","), c) && n.FP > 0 {
			w("| %s (no corpus category) | 0 | | | 0 | | | %d | 0 |\n", c, n.FP)
		}
	}
	w("\n### Per kind (all)\n\n| kind | P | R | FP | FN |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, k := range sortedKeys(all.PerKind) {
		o := all.PerKind[k]
		w("| %s | %s | %s | %d | %d |\n", k, prec(o), pct(o.Recall()), o.FP, o.FN)
	}
	return b.String()
}

func sortedKeys(m map[string]*Counts) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}
