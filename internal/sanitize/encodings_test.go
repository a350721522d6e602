package sanitize

import (
	"strings"
	"testing"
)

// Issue 10, encodings: a value in a form agents and tools commonly produce is
// still that value.
func TestEncodedValuesFound(t *testing.T) {
	s := newTest(t)
	cases := []struct {
		name, in string
		cat      Category
	}{
		{"url query", "GET /lookup?user=hannah.schmidt%40northwind.dev&x=1", CategoryEmail},
		{"form body", "email=hannah.schmidt%40northwind.dev&name=H", CategoryEmail},
		{"url lowercase hex", "q=hannah.schmidt%40northwind%2edev", CategoryEmail},
		{"html decimal", "contact: hannah.schmidt&#64;northwind.dev", CategoryEmail},
		{"html hex", "contact: hannah.schmidt&#x40;northwind&#x2E;dev", CategoryEmail},
		{"html named", "contact: hannah.schmidt&commat;northwind&period;dev", CategoryEmail},
		{"zero-width space", "mail hannah.schmidt@north\u200bwind.dev now", CategoryEmail},
		{"zero-width joiner", "mail hannah\u200d.schmidt@northwind.dev now", CategoryEmail},
		{"soft hyphen", "mail hannah.schmidt@north\u00adwind.dev now", CategoryEmail},
		{"word joiner in key", "key AKIA\u2060QWERTYUIOPASDFGH", CategoryAWSAccessKey},
		{"fullwidth", "mail ｈａｎｎａｈ．ｓｃｈｍｉｄｔ＠ｎｏｒｔｈｗｉｎｄ．ｄｅｖ now", CategoryEmail},
		{"fullwidth key", "key ＡＫＩＡＱＷＥＲＴＹＵＩＯＰＡＳＤＦＧＨ", CategoryAWSAccessKey},
		{"json unicode escape", `{"m":"hannah.schmidt\u0040northwind.dev"}`, CategoryEmail},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := s.Scan([]byte(c.in))
			ok := false
			for _, f := range fs {
				ok = ok || f.Category == c.cat
			}
			if !ok {
				t.Fatalf("%q: findings %v, want %s", c.in, found([]byte(c.in), fs), c.cat)
			}
			// The finding covers the encoded value, so redaction removes all of it.
			res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(c.in))
			if strings.Contains(res.Output, "northwind") || strings.Contains(res.Output, "QWERTY") || strings.Contains(res.Output, "ＱＷＥＲＴＹ") {
				t.Fatalf("redacted output still holds the value: %q", res.Output)
			}
		})
	}
	// Encoded markup is not a value: no findings from decoding alone.
	for _, in := range []string{"a%20b%2Fc", "&lt;b&gt;bold&lt;/b&gt; &amp; more", "price&#58; 10 &#x25;", "ｈｅｌｌｏ ｗｏｒｌｄ", "co\u00adoperate"} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}
