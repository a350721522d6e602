// Command screeneval scores internal/screen on a labelled injection corpus and writes
// the Markdown report. Run it from the repository root, where the default -corpus
// path points:
//
//	go run ./bench/screen/screeneval -corpus testdata/corpus/injection.dev.jsonl \
//		-benign testdata/corpus/pii-secrets.dev.jsonl -out bench/screen/EVAL-screen.md
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	benchscreen "github.com/treaty-dev/treaty/bench/screen"
	"github.com/treaty-dev/treaty/internal/screen"
)

func main() {
	corpus := flag.String("corpus", "testdata/corpus/injection.dev.jsonl", "JSON Lines corpus of {id,label,text}")
	out := flag.String("out", "", "write the Markdown report here (default: stdout)")
	benign := flag.String("benign", "", "optional JSON Lines corpus of {id,text} with no injections, reported as an out-of-domain false-positive check")
	errs := flag.String("errors", "", "list misclassified records of this split (tune, holdout, all) on stderr")
	heldout := flag.String("heldout", "", "score this held-out corpus (open and sealed parts) instead; with -errors open, list the open part's errors")
	flag.Parse()
	var err error
	if *heldout != "" {
		err = runHeldout(*heldout, *out, *errs)
	} else {
		err = run(*corpus, *benign, *out, *errs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "screeneval:", err)
		os.Exit(1)
	}
}

func run(corpus, benign, out, errs string) error {
	recs, err := benchscreen.Load(corpus)
	if err != nil {
		return err
	}
	s, err := screen.New(screen.Config{})
	if err != nil {
		return err
	}
	pol := screen.DefaultPolicy()
	rs := benchscreen.Run(s, pol, recs)
	rescore := func(th float64) []benchscreen.Result {
		cp := make([]benchscreen.Result, len(rs))
		for i, r := range rs {
			r.Flagged = r.Score >= th
			cp[i] = r
		}
		return cp
	}
	var extras []benchscreen.Extra
	if benign != "" {
		brecs, err := benchscreen.LoadBenign(benign)
		if err != nil {
			return err
		}
		extras = append(extras, benchscreen.Extra{Path: benign, Results: benchscreen.Run(s, pol, brecs)})
	}
	var b bytes.Buffer
	benchscreen.WriteReport(&b, corpus, rs, pol, rescore, extras...)
	if errs != "" {
		for _, r := range rs {
			if errs == "tune" && benchscreen.Holdout(r.ID) || errs == "holdout" && !benchscreen.Holdout(r.ID) {
				continue
			}
			if r.Flagged != (r.Label == "injection") {
				t := strings.ReplaceAll(r.Text, "\n", " ")
				if len(t) > 220 {
					t = t[:220]
				}
				fmt.Fprintf(os.Stderr, "%s %-5.3f %s %v | %s\n", map[bool]string{true: "FP", false: "FN"}[r.Flagged], r.Score, r.ID, r.Reasons, t)
			}
		}
	}
	if out == "" {
		_, err = os.Stdout.Write(b.Bytes())
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

func runHeldout(corpus, out, errs string) error {
	recs, err := benchscreen.Load(corpus)
	if err != nil {
		return err
	}
	s, err := screen.New(screen.Config{})
	if err != nil {
		return err
	}
	pol := screen.DefaultPolicy()
	rs := benchscreen.Run(s, pol, recs)
	if errs == "open" {
		// Development: the open part's figures and errors only; the sealed part is not shown.
		c := benchscreen.Tally(rs, func(r benchscreen.Result) bool { return r.Split == "open" })
		fmt.Fprintf(os.Stderr, "open: TP %d FP %d TN %d FN %d recall %.3f FPR %.4f\n", c.TP, c.FP, c.TN, c.FN, c.Recall(), c.FPR())
		for _, r := range rs {
			if r.Split != "open" || r.Flagged == (r.Label == "injection") {
				continue
			}
			t := strings.ReplaceAll(r.Text, "\n", " ")
			if len(t) > 260 {
				t = t[:260]
			}
			fmt.Fprintf(os.Stderr, "%s %-5.3f %s %s/%s %v | %s\n", map[bool]string{true: "FP", false: "FN"}[r.Flagged], r.Score, r.ID, r.Lang, r.Style, r.Reasons, t)
		}
		return nil
	}
	var b bytes.Buffer
	benchscreen.WriteHeldoutReport(&b, corpus, rs, pol)
	if out == "" {
		_, err = os.Stdout.Write(b.Bytes())
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}
