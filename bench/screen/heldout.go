package benchscreen

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/treaty-dev/treaty/internal/screen"
)

// WriteHeldoutReport writes the evaluation on the held-out corpus
// (testdata/corpus/injection.heldout.jsonl): open and sealed parts side by side,
// recall per attack style and language, false-positive rate per benign kind
// (ordinary messages, hard negatives that discuss or contain prompts, tool output)
// and per language.
func WriteHeldoutReport(w io.Writer, corpus string, rs []Result, pol screen.Policy) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	part := func(sp string) func(Result) bool {
		return func(r Result) bool { return sp == "" || r.Split == sp }
	}
	p("# Inbound screening: held-out corpus\n\n")
	all := Tally(rs, nil)
	p("Corpus: `%s` (%d records: %d injection, %d benign; how it was made: testdata/corpus/README.md).\n", corpus, len(rs), all.TP+all.FN, all.FP+all.TN)
	p("Flagged means `Screen` under the default policy returns anything but `pass` (score >= %.2f).\n", pol.MarkThreshold)
	p("**open**: the part whose errors could be looked at while improving the screen; **sealed**: a third of the\n")
	p("hand-written texts (every carrier of one text in the same part), evaluated only.\n\n")
	p("| part | records | TP | FP | TN | FN | precision | recall | FPR on benign | FPR 95%% upper | FPR on hard negatives |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sp := range []string{"open", "sealed", ""} {
		c := Tally(rs, part(sp))
		h := Tally(rs, func(r Result) bool { return part(sp)(r) && strings.HasPrefix(r.Style, "hardneg-") })
		name := sp
		if name == "" {
			name = "all"
		}
		p("| %s | %d | %d | %d | %d | %d | %.3f | %.3f | %.2f%% | %.2f%% | %.2f%% (%d/%d) |\n", name, c.TP+c.FP+c.TN+c.FN, c.TP, c.FP, c.TN, c.FN,
			c.Precision(), c.Recall(), 100*c.FPR(), 100*wilsonUpper(c.FP, c.FP+c.TN), 100*h.FPR(), h.FP, h.FP+h.TN)
	}
	table := func(title string, key func(Result) string, label string) {
		p("\n## %s\n\n| %s | open n | open rate | sealed n | sealed rate | all rate |\n|---|---|---|---|---|---|\n", title, "key")
		keys := map[string]bool{}
		for _, r := range rs {
			if r.Label == label {
				keys[key(r)] = true
			}
		}
		ks := make([]string, 0, len(keys))
		for k := range keys {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		for _, k := range ks {
			var cells []string
			for _, sp := range []string{"open", "sealed", ""} {
				n, f := 0, 0
				for _, r := range rs {
					if r.Label == label && key(r) == k && part(sp)(r) {
						n++
						if r.Flagged {
							f++
						}
					}
				}
				if sp == "" {
					cells = append(cells, fmt.Sprintf("%.1f%%", 100*ratio(f, n)))
				} else {
					cells = append(cells, fmt.Sprintf("%d", n), fmt.Sprintf("%.1f%%", 100*ratio(f, n)))
				}
			}
			p("| %s | %s |\n", k, strings.Join(cells, " | "))
		}
	}
	style := func(r Result) string {
		if strings.HasPrefix(r.Style, "traffic-") {
			return "traffic (tool output)"
		}
		return r.Style
	}
	table("Recall per attack style (injection records)", style, "injection")
	table("Recall per language (injection records)", func(r Result) string { return r.Lang }, "injection")
	table("False-positive rate per benign kind", style, "benign")
	table("False-positive rate per language (benign records)", func(r Result) string { return r.Lang }, "benign")
	p("\n## Reproduce\n\n```\ngo run ./bench/screen/screeneval -heldout testdata/corpus/injection.heldout.jsonl -out bench/screen/EVAL-screen-heldout.md\n```\n")
}
