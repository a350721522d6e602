package sanitize

import (
	"strings"
	"testing"
)

// IBANs grouped by dashes or tabs are caught as the space-grouped ones are,
// with the same checks; what is and is not caught is listed in doc.go.
func TestIBANSeparators(t *testing.T) {
	de := "DE89370400440532013000"
	gb := ibanFor("GB", "WEST12345698765432")
	dashed := func(s, sep string) string { return strings.ReplaceAll(group4(s), " ", sep) }
	bad := de[:21] + "1" // mod-97 fails
	cases := []detectCase{
		{"dashes", "IBAN " + dashed(de, "-") + " please", CategoryIBAN, dashed(de, "-")},
		{"tabs", "iban\t" + dashed(de, "\t") + "\tEUR", CategoryIBAN, dashed(de, "\t")},
		{"json tab escapes", `{"iban":"` + dashed(de, `\t`) + `"}`, CategoryIBAN, dashed(de, `\t`)},
		{"letters in the BBAN, dashes", dashed(gb, "-"), CategoryIBAN, dashed(gb, "-")},
		{"lower case, dashes", "iban " + strings.ToLower(dashed(de, "-")) + ".", CategoryIBAN, strings.ToLower(dashed(de, "-"))},
		{"mixed separators", "DE89-3704 0044\t0532-0130 00", CategoryIBAN, "DE89-3704 0044\t0532-0130 00"},
		{"en dash (decoded view)", "IBAN " + dashed(de, "\u2013"), CategoryIBAN, dashed(de, "\u2013")},
		{"non-breaking hyphen (decoded view)", "IBAN " + dashed(de, "\u2011"), CategoryIBAN, dashed(de, "\u2011")},
		{"minus sign (decoded view)", "IBAN " + dashed(de, "\u2212"), CategoryIBAN, dashed(de, "\u2212")},
		{"fullwidth hyphen-minus (decoded view)", "IBAN " + dashed(de, "\uff0d"), CategoryIBAN, dashed(de, "\uff0d")},
		// Not caught: the checksum fails, the length is the country's
		// wrong, the run goes on as a longer dashed identifier, a separator
		// stands inside the country and check digits or two in a row.
		{"checksum fails", "IBAN " + dashed(bad, "-"), "", dashed(bad, "-")},
		{"too short for DE", "IBAN " + dashed(de[:20], "-"), "", dashed(de[:20], "-")},
		{"longer dashed identifier", "ref " + dashed(de, "-") + "-7", "", dashed(de, "-")},
		{"separator inside the country", "D-E89-3704-0044-0532-0130-00", "", "3704-0044-0532-0130"},
		{"separator after the country", "DE-89-3704-0044-0532-0130-00", "", "3704-0044-0532-0130"},
		{"doubled dashes", "DE89--3704--0044--0532--0130--00", "", "3704--0044--0532--0130"},
		{"spaced dashes", "DE89 - 3704 - 0044 - 0532 - 0130 - 00", "", "3704 - 0044 - 0532"},
		{"first group not four", "DE8937-04-0044-0532-0130-00", "", "0044-0532-0130"},
		{"katakana long vowel mark is no dash", "DE89\u30fc3704\u30fc0044\u30fc0532\u30fc0130\u30fc00", "", "3704"},
		{"dashes with a group run together", "DE89-37040044-0532-0130-00", "", "0532-0130"},
		{"dashed piece glued before", "ref-7-" + dashed(de, "-"), "", dashed(de, "-")},
	}
	// UUIDs from the dev corpus whose last two groups read as a valid
	// Belgian IBAN (16 characters), and UUIDs whose last three groups read as a valid Estonian IBAN (20
	// characters: ee + check digits, 4, 12) or whose last four read as a
	// valid Andorran one (24: ad.., 4, 4, 12), in either case.
	ee := strings.ToLower(ibanFor("EE", "3456789012345678"))
	ad := strings.ToLower(ibanFor("AD", "12340000567890123456"))
	for _, u := range []string{
		"0a1b2c3d-4e5f-" + ee[:4] + "-" + ee[4:8] + "-" + ee[8:],
		strings.ToUpper("0a1b2c3d-4e5f-" + ee[:4] + "-" + ee[4:8] + "-" + ee[8:]),
		"28bdff34-48d4-4c7d-be10-f2e1924a067c",
		"7a9b95b4-94a3-4000-be97-67143953e86d",
		"0a1b2c3d-" + ad[:4] + "-" + ad[4:8] + "-" + ad[8:12] + "-" + ad[12:],
	} {
		cases = append(cases, detectCase{"uuid " + u, `{"request_id":"` + u + `"}`, "", u[9:]})
	}
	runDetect(t, cases)
}
