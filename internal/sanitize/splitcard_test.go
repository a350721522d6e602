package sanitize

import (
	"slices"
	"strings"
	"testing"
)

// column puts the digits of a 16-digit number one group of four a line, as a
// table of years or amounts would.
func column(n, sep string) string {
	return n[:4] + sep + n[4:8] + sep + n[8:12] + sep + n[12:]
}

func hasCard(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryCreditCard })
}

// A column of four-digit numbers that joins into a Luhn-valid number of a
// card brand's range is no card without a word that says it is one.
func TestCardColumnWithoutContextIsNoCard(t *testing.T) {
	s := newTest(t)
	amounts := luhnComplete("400012345678901") // Visa's range, Luhn-valid
	years := luhnComplete("222120222023202")   // Mastercard's 2-series
	bin := luhnComplete("411111111111111")     // 4111 1111 1111 1111
	if !cardBrand([]byte(amounts)) || !luhn([]byte(amounts)) || !cardBrand([]byte(years)) {
		t.Fatal("test numbers are not card-shaped")
	}
	for _, in := range []string{
		column(amounts, "\n"),
		column(bin, "\n"),
		"totals\n" + column(amounts, "\n") + "\n",
		"amounts " + column(amounts, "\n") + " EUR",
		"Number\n" + column(amounts, "\n"),         // "number" alone is no card word
		column(years, "\r\n"),                      // \r\n
		`{"rows":"` + column(amounts, `\n`) + `"}`, // JSON \n escapes
		"we accept\n" + column(amounts, "\n"),      // cc inside a word
		"span " + column(amounts, "\n"),            // pan inside a word
		"card on file is elsewhere" + strings.Repeat(" ", cardBefore) + "\n" + column(amounts, "\n"), // the word too far
	} {
		fs := s.Scan([]byte(in))
		if hasCard(fs) {
			t.Errorf("%q: findings %v, want no card", in, found([]byte(in), fs))
		}
		res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(in))
		if res.Output != in {
			t.Errorf("%q: output %q, want it unchanged", in, res.Output)
		}
	}
}

// A card split over three lines or more is caught when a card word stands
// before it (on its line or the lines above) or after its last piece.
func TestCardOverLinesWithContext(t *testing.T) {
	s := newTest(t)
	visa := luhnComplete("414720000000000")
	amex := luhnComplete("37828224631000")
	for _, c := range []struct{ name, in, rest string }{
		{"label above a bare column", "Card:\n" + column(visa, "\n"), visa[12:]},
		{"brand above", "VISA\n" + column(visa, "\n") + "\n", visa[12:]},
		{"json key", `{"card_number":"` + column(visa, `\n`) + `"}`, visa[12:]},
		{"cc# short word", "cc# " + column(visa, "\n"), visa[12:]},
		{"pan short word", "PAN " + column(visa, "\n"), visa[12:]},
		{"expiry after", column(visa, "\n") + " exp 09/30", visa[12:] + " exp"},
		{"kreditkarte", "Kreditkarte: " + column(visa, "\n"), visa[12:]},
		{"amex over three lines", "American Express\n" + amex[:4] + "\n" + amex[4:10] + "\n" + amex[10:], amex[10:]},
		{"indented, \\r\\n", "cardholder paid with\r\n  " + column(visa, "\r\n  "), visa[12:]},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := s.Scan([]byte(c.in))
			if !hasCard(fs) {
				t.Fatalf("%q: findings %v, want a card", c.in, found([]byte(c.in), fs))
			}
			res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(c.in))
			if strings.Contains(res.Output, c.rest) {
				t.Fatalf("redacted output still holds the last piece: %q", res.Output)
			}
		})
	}
	// Split over two lines, a card needs no word (unchanged).
	in := "paid " + visa[:8] + "\n" + visa[8:] + " ok"
	if fs := s.Scan([]byte(in)); !hasCard(fs) {
		t.Errorf("%q: findings %v, want a card", in, found([]byte(in), fs))
	}
}

func TestCardContext(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"card: |", true},
		{"CreditCard |", true},
		{"cc |", true},
		{"cc_num |", true},
		{"accept |", false},
		{"Japan |", false},
		{"number |", false},
		{"| exp 09/30", true},
		{"| expected", false},
		{"| Visa", true},
		{"|", false},
	} {
		d := []byte(c.in)
		k := strings.IndexByte(c.in, '|')
		if got := cardContext(d, k, k+1); got != c.want {
			t.Errorf("cardContext(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
