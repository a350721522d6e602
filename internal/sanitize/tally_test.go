package sanitize

import (
	"reflect"
	"testing"
)

// TestTallyReport checks the counts Apply keeps without maps against the
// maps built directly, past the inline rows, and that every Report is the
// caller's own.
func TestTallyReport(t *testing.T) {
	cats := []Category{CategoryEmail, CategoryPhone, CategoryIBAN, CategoryJWT, CategoryGitHubToken,
		CategoryAWSAccessKey, CategoryPrivateKey, CategoryIPv4, CategorySecret}
	acts := []Action{ActionRedact, ActionPseudonymize, ActionAllow}
	var tl tally
	want := Report{Strongest: ActionPass, Counts: map[Category]map[Action]int{}}
	for i := 0; i < 200; i++ {
		c, a := cats[(i*7)%len(cats)], acts[(i*5)%len(acts)]
		tl.add(c, a)
		if want.Counts[c] == nil {
			want.Counts[c] = map[Action]int{}
		}
		want.Counts[c][a]++
	}
	if tl.n <= len(tl.inline) {
		t.Fatalf("only %d rows: the overflow rows are not exercised", tl.n)
	}
	tl.strongest = ActionPass
	got := tl.report()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report = %+v, want %+v", got, want)
	}
	got.Counts[CategoryEmail][ActionRedact] = -1
	delete(got.Counts, CategoryPhone)
	if again := tl.report(); !reflect.DeepEqual(again, want) {
		t.Fatalf("a changed Report changed the next one: %+v", again)
	}
}
