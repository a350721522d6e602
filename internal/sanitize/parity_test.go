package sanitize

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/zricethezav/gitleaks/v8/detect"
)

// TestGitleaksParity checks the rule runner against gitleaks itself on the
// labelled corpus in testdata/corpus (its first 1,500 records; 300 under
// -race): every finding of gitleaks' DetectString (rule and secret) is
// also found when rules run only near their keywords, and nothing else is
// found except where gitleaks' leftmost-first scan swallowed a second match
// of the same rule. Matches over 4 KiB (cut by design) are left out, and so
// are the four rules gitleaks runs only on named files.
func TestGitleaksParity(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs gitleaks")
	}
	f, err := os.Open("../../testdata/corpus/pii-secrets.dev.jsonl")
	if err != nil {
		t.Fatalf("the corpus ships with the repository: %v", err)
	}
	defer f.Close()
	det, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	s := newTest(t)
	rd := bufio.NewScanner(f)
	rd.Buffer(nil, 1<<24)
	type span struct {
		rule       string
		start, end int
	}
	var theirs, missed, extra int
	var report []string
	records := 1500 // half the corpus keeps the test quick
	if raceEnabled {
		records = 300 // gitleaks alone takes minutes on 1,500 under the race detector
	}
	for n := 0; rd.Scan() && n < records; n++ {
		var r struct{ ID, Text string }
		if err := json.Unmarshal(rd.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		data := []byte(r.Text)
		want := map[string]bool{}
		var spans []span
		for _, g := range det.DetectString(r.Text) {
			if i := strings.Index(r.Text, g.Secret); i >= 0 {
				spans = append(spans, span{g.RuleID, i, i + len(g.Secret)})
			}
			if len(g.Secret) > windowCap {
				continue // matches are cut at 4 KiB by design (see glMode)
			}
			want[g.RuleID+"\x00"+g.Secret] = true
			theirs++
		}
		got := map[string]bool{}
		for _, x := range s.gitleaksOnly(data) {
			rule := strings.TrimPrefix(x.Rule, "gitleaks:")
			k := rule + "\x00" + string(data[x.Start:x.End])
			got[k] = true
			if want[k] || x.End-x.Start >= windowCap {
				continue
			}
			swallowed := false
			for _, sp := range spans {
				swallowed = swallowed || (sp.rule == rule && sp.start < x.End && x.Start < sp.end)
			}
			if !swallowed {
				extra++
				report = append(report, fmt.Sprintf("extra  %s %q", r.ID, strings.ReplaceAll(k, "\x00", " ")))
			}
		}
		for k := range want {
			if !got[k] {
				missed++
				report = append(report, fmt.Sprintf("missed %s %q", r.ID, strings.ReplaceAll(k, "\x00", " ")))
			}
		}
	}
	for i, l := range report {
		if i < 20 {
			t.Log(l)
		}
	}
	t.Logf("gitleaks findings %d, missed %d, extra %d", theirs, missed, extra)
	if missed > 0 || extra > 0 {
		t.Errorf("rule runner differs from gitleaks: %d missed, %d extra", missed, extra)
	}
}
