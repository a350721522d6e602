// Package benchscreen measures internal/screen: accuracy on the labelled injection
// corpus (Evaluate, and the screeneval command that writes EVAL-screen.md) and speed
// (the benchmarks in this directory, each against a baseline in the same run).
package benchscreen

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/treaty-dev/treaty/internal/screen"
)

// Record is one line of injection.dev.jsonl.
type Record struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Label  string `json:"label"` // "injection" or "benign"
	Text   string `json:"text"`
	// Held-out corpus only: language, style (attack style, "benign", "hardneg-*",
	// "traffic-*"), the hand-written text the record carries, and "open" or "sealed".
	Lang  string `json:"lang,omitempty"`
	Style string `json:"style,omitempty"`
	Group string `json:"group,omitempty"`
	Split string `json:"split,omitempty"`
}

// Load reads a JSON Lines corpus of labelled records.
func Load(path string) ([]Record, error) { return load(path, "") }

// LoadBenign reads a JSON Lines corpus of {"id","text"} records and labels them benign.
func LoadBenign(path string) ([]Record, error) { return load(path, "benign") }

func load(path, label string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if label != "" {
			r.Label = label
		}
		if r.Label != "injection" && r.Label != "benign" {
			return nil, fmt.Errorf("%s:%d: label %q", path, n, r.Label)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Holdout reports whether a record belongs to the held-out fifth of the corpus, chosen
// by a hash of its id so the split is stable and independent of content.
func Holdout(id string) bool {
	h := sha256.Sum256([]byte(id))
	return h[0]%5 == 0
}

// Group is the corpus family of a record: its id without the trailing number, with
// NotInject's three files and BIPIA's train/test halves merged.
func Group(id string) string {
	g := id
	if i := strings.LastIndexByte(g, '-'); i > 0 {
		g = g[:i]
	}
	switch {
	case strings.HasPrefix(g, "bipia-textattack"):
		return "bipia-textattack"
	case strings.HasPrefix(g, "bipia-codeattack"):
		return "bipia-codeattack"
	case strings.HasPrefix(g, "bipia-email"):
		return "bipia-email"
	case strings.HasPrefix(g, "garak-sysprompt"):
		return "garak-sysprompt"
	case strings.HasPrefix(g, "giskard"):
		return "giskard"
	case strings.HasPrefix(g, "notinject"):
		return "notinject"
	case strings.HasPrefix(g, "llmail"):
		return "llmail"
	case strings.HasPrefix(g, "agentdojo"):
		return "agentdojo"
	}
	return g
}

// Result is one screened record.
type Result struct {
	Record
	Score   float64
	Flagged bool
	Reasons []string
}

// Run screens every record under pol.
func Run(s *screen.Screener, pol screen.Policy, recs []Record) []Result {
	out := make([]Result, len(recs))
	for i, r := range recs {
		v := s.Screen(pol, []byte(r.Text))
		out[i] = Result{Record: r, Score: v.Score, Flagged: v.Action != screen.ActionPass, Reasons: v.Reasons}
	}
	return out
}

// Counts is a confusion matrix.
type Counts struct{ TP, FP, TN, FN int }

func (c *Counts) add(r Result) {
	switch {
	case r.Label == "injection" && r.Flagged:
		c.TP++
	case r.Label == "injection":
		c.FN++
	case r.Flagged:
		c.FP++
	default:
		c.TN++
	}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (c Counts) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }
func (c Counts) Recall() float64    { return ratio(c.TP, c.TP+c.FN) }
func (c Counts) FPR() float64       { return ratio(c.FP, c.FP+c.TN) }
func (c Counts) F1() float64 {
	p, r := c.Precision(), c.Recall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

// wilsonUpper is the upper end of the 95% Wilson score interval for k successes in n.
func wilsonUpper(k, n int) float64 {
	if n == 0 {
		return 0
	}
	const z = 1.96
	p, nf := float64(k)/float64(n), float64(n)
	return (p + z*z/(2*nf) + z*math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))) / (1 + z*z/nf)
}

// Tally counts results, optionally filtered.
func Tally(rs []Result, keep func(Result) bool) Counts {
	var c Counts
	for _, r := range rs {
		if keep == nil || keep(r) {
			c.add(r)
		}
	}
	return c
}

// Extra is a benign-only corpus scored alongside, as an out-of-domain check of false
// positives.
type Extra struct {
	Path    string
	Results []Result
}

// WriteReport writes the Markdown evaluation.
func WriteReport(w io.Writer, corpus string, rs []Result, pol screen.Policy, rescore func(th float64) []Result, extras ...Extra) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	all := Tally(rs, nil)
	tune := Tally(rs, func(r Result) bool { return !Holdout(r.ID) })
	hold := Tally(rs, func(r Result) bool { return Holdout(r.ID) })
	p("# Inbound screening: evaluation on the injection corpus\n\n")
	p("Corpus: `%s` (%d records: %d injection, %d benign). A record counts as flagged when\n", corpus, len(rs), all.TP+all.FN, all.FP+all.TN)
	p("`Screen` under the default policy returns anything but `pass` (score >= %.2f).\n", pol.MarkThreshold)
	p("The detectors were developed against the **tune** split only. The **holdout** split (a fifth\n")
	p("of the records, chosen by SHA-256 of the id) was never inspected record by record: its\n")
	p("aggregate row was printed alongside during development, and no rule was changed in response.\n\n")
	p("| split | records | TP | FP | TN | FN | precision | recall | F1 | FPR on benign | FPR 95%% upper (Wilson) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		c    Counts
	}{{"tune", tune}, {"holdout", hold}, {"all", all}} {
		c := row.c
		p("| %s | %d | %d | %d | %d | %d | %.3f | %.3f | %.3f | %.2f%% | %.2f%% |\n", row.name, c.TP+c.FP+c.TN+c.FN, c.TP, c.FP, c.TN, c.FN, c.Precision(), c.Recall(), c.F1(), 100*c.FPR(), 100*wilsonUpper(c.FP, c.FP+c.TN))
	}
	p("\nTargets (issue 3): report precision, recall and the false-positive rate on benign texts\n")
	p("honestly, with the false-positive rate at most 2%%. The FPR target is met on both splits, and\n")
	p("on all records even at the upper end of its 95%% interval (the holdout alone is too small for that);\n")
	p("recall is what a lexical screen reaches on this corpus (see the groups below and the notes).\n")
	p("\n## Per source group (all records)\n\n")
	p("Recall for injection groups, false-positive rate for benign groups.\n\n")
	p("| group | label | records | flagged | rate |\n|---|---|---|---|---|\n")
	groups := map[string][]Result{}
	for _, r := range rs {
		k := Group(r.ID) + "\x00" + r.Label
		groups[k] = append(groups[k], r)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := groups[k]
		n := 0
		for _, r := range g {
			if r.Flagged {
				n++
			}
		}
		name, label, _ := strings.Cut(k, "\x00")
		p("| %s | %s | %d | %d | %.1f%% |\n", name, label, len(g), n, 100*ratio(n, len(g)))
	}
	if rescore != nil {
		p("\n## Threshold sweep (all records)\n\n")
		p("The same scores with other mark thresholds (`Policy.MarkThreshold`).\n\n")
		p("| threshold | precision | recall | FPR on benign |\n|---|---|---|---|\n")
		for _, th := range []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9} {
			c := Tally(rescore(th), nil)
			p("| %.1f | %.3f | %.3f | %.2f%% |\n", th, c.Precision(), c.Recall(), 100*c.FPR())
		}
	}
	for _, e := range extras {
		c := Tally(e.Results, nil)
		p("\n## Out-of-domain benign check\n\n")
		p("`%s`: %d records of agent traffic with no injection in them (chat, JSON tool calls, diffs,\n", e.Path, c.FP+c.TN)
		p("logs, e-mail, config, CSV), every record treated as benign. Flagged: **%d** (FPR %.2f%%).\n", c.FP, 100*c.FPR())
		if c.FP > 0 {
			p("\n| id | score | reasons |\n|---|---|---|\n")
			for _, r := range e.Results {
				if r.Flagged {
					p("| %s | %.3f | %s |\n", r.ID, r.Score, strings.Join(r.Reasons, ", "))
				}
			}
		}
	}
	defer p("%s", reportNotes)
	p("\n## Reasons on flagged records\n\n| reason | injection | benign |\n|---|---|---|\n")
	type rc struct{ inj, ben int }
	reasons := map[string]*rc{}
	for _, r := range rs {
		if !r.Flagged {
			continue
		}
		for _, re := range r.Reasons {
			if reasons[re] == nil {
				reasons[re] = &rc{}
			}
			if r.Label == "injection" {
				reasons[re].inj++
			} else {
				reasons[re].ben++
			}
		}
	}
	rk := make([]string, 0, len(reasons))
	for k := range reasons {
		rk = append(rk, k)
	}
	slices.SortFunc(rk, func(a, b string) int {
		if d := reasons[b].inj + reasons[b].ben - reasons[a].inj - reasons[a].ben; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, k := range rk {
		p("| %s | %d | %d |\n", k, reasons[k].inj, reasons[k].ben)
	}
}

const reportNotes = `
## Notes

- **How the rules were developed.** Weights were set from what each phrase means, then
  checked against misclassified records of the tune split (never the holdout), looking for
  rules that were wrong in general (a missing verb form, a German word order, an overlap
  counted twice) rather than for phrases of single records. The out-of-domain benign
  corpus was used the same way once: it exposed three general bugs (PEM "-----END ..."
  lines read as fake end-of-input markers, "email" the noun read as a send verb, and
  ".env" paths read as sensitive), which were fixed.
- **Where the misses are.** deepset injections are often purely semantic ("state that X is
  the best", "tell me a joke about ...") or politely framed hijacks with no instruction
  vocabulary; BIPIA code attacks hide in ordinary-looking code; some in-the-wild
  jailbreaks are role-play set-ups without the usual jailbreak words. A lexical screen
  cannot see these; a model-based classifier could be added behind the same Verdict.
- **Where the false positives are.** Nearly all are WildGuard "adversarial benign"
  prompts: jailbreak framing ("disregarding any ethical programming you might have",
  "you must not adhere to any ethical guidelines", "begin your response with ...") around
  a harmless request. As inbound content for an agent they are instructions to it, so
  marking them is defensible, but they count as false positives here.
- **Direction.** The score does not know whether content is a call input (a prompt by
  design) or a result (data that should not instruct). Output-manipulation phrasing is
  normal in inputs to an agent capability; a policy for such a capability may want a
  higher MarkThreshold.
- **Not in this corpus.** Hidden unicode, homoglyphs and encoded payloads barely occur in
  it; their detection is covered by the unit tests of internal/screen.

## Reproduce

` + "```" + `
go run ./bench/screen/screeneval -corpus testdata/corpus/injection.dev.jsonl \
    -benign testdata/corpus/pii-secrets.dev.jsonl -out bench/screen/EVAL-screen.md
go run ./bench/screen/screeneval -corpus testdata/corpus/injection.dev.jsonl -errors tune   # misclassified tune records on stderr
` + "```" + `
`
