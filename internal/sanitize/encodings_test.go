package sanitize

import (
	"bytes"
	"compress/gzip"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"slices"
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

// base64 of 16 bytes or more, and gzip inside base64, are decoded and scanned.
func TestBase64ShortAndGzip(t *testing.T) {
	s := newTest(t)
	email := "ab@northwind.dev" // 16 bytes
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"level":"info","msg":"sent invoice to hannah.schmidt@northwind.dev"}`))
	zw.Close()
	for name, in := range map[string]string{
		"16 bytes std":   "blob " + base64.StdEncoding.EncodeToString([]byte(email)) + " end",
		"16 bytes raw":   "blob " + base64.RawURLEncoding.EncodeToString([]byte(email)) + " end",
		"gzip+base64":    `{"body":"` + base64.StdEncoding.EncodeToString(gz.Bytes()) + `"}`,
		"gzip+base64url": "H4s " + base64.RawURLEncoding.EncodeToString(gz.Bytes()),
	} {
		if fs := s.Scan([]byte(in)); !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryEmail }) {
			t.Errorf("%s: findings %v, want email", name, found([]byte(in), fs))
		}
	}
	// A gzip bomb inflates only up to MaxInputBytes.
	s2, err := New(Config{PseudonymKey: testKey, MaxInputBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte("a"), 64<<20))
	zw.Close()
	s2.Scan([]byte(base64.StdEncoding.EncodeToString(bomb.Bytes())))
}

// Digit groups separated by dots, underscores and no-break spaces.
func TestDigitGroupSeparators(t *testing.T) {
	s := newTest(t)
	for in, cat := range map[string]Category{
		"card 4111.1111.1111.1111 ok":                               CategoryCreditCard,
		"card 4111_1111_1111_1111 ok":                               CategoryCreditCard,
		"card 4111\u00a01111\u00a01111\u00a01111 ok":                CategoryCreditCard,
		"card 4111\u202f1111\u202f1111\u202f1111 ok":                CategoryCreditCard,
		"phone +1\u00a0415\u00a0555\u00a00100":                      CategoryPhone,
		"phone +1_415_555_0100":                                     CategoryPhone,
		"iban DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000": CategoryIBAN,
		// Other group sizes: SSN 3-2-4, Amex 4-6-5, phone 3-3-4, IBAN.
		"ssn 078.05.1120 ok":                CategoryUSSSN,
		"ssn 078 05 1120 ok":                CategoryUSSSN,
		"ssn 078\u00a005\u00a01120 ok":      CategoryUSSSN,
		"ssn 078_05_1120 ok":                CategoryUSSSN,
		"amex 3782.822463.10005":            CategoryCreditCard,
		"amex 3782\u00a0822463\u00a010005":  CategoryCreditCard,
		"amex 3782_822463_10005":            CategoryCreditCard,
		"call 415.555.0100 now":             CategoryPhone,
		"call 415\u00a0555\u00a00100 now":   CategoryPhone,
		"call 415_555_0100 now":             CategoryPhone,
		"iban DE89.3704.0044.0532.0130.00.": CategoryIBAN,
		"iban DE89_3704_0044_0532_0130_00":  CategoryIBAN,
	} {
		if fs := s.Scan([]byte(in)); !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == cat }) {
			t.Errorf("%q: findings %v, want %s", in, found([]byte(in), fs), cat)
		}
	}
	for _, in := range []string{
		"version 1.2.3 and 10.5", "pi is 3.1415", "build_2024_01", "x = 1000.0001",
		"released 2024.01.15", "total 1.234.567 units", "ssn-like 078.05.1121.7 build", // a fourth group: not an SSN
		"amex-like 3782.822463.10006",     // Luhn fails
		"not an iban DE89.3704.0044.0532", // too short, checksum fails
		"v 415.555.0100.2",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}

// Hex of text is decoded; hex digests and UUIDs are not findings.
func TestHexDecoded(t *testing.T) {
	s := newTest(t)
	in := "dump: " + hex.EncodeToString([]byte("to hannah.schmidt@northwind.dev")) + " end"
	if fs := s.Scan([]byte(in)); !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryEmail }) {
		t.Errorf("hex of an email: findings %v", found([]byte(in), fs))
	}
	for _, in := range []string{
		"sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"id 123e4567-e89b-12d3-a456-426614174000",
		"text " + hex.EncodeToString([]byte("just some harmless words here")),
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}

// cutAt40 is text whose 40th byte starts a two-byte character, with an
// email address well after it.
var cutAt40 = "a" + strings.Repeat("é", 30) + " mail ab@northwind.dev"

// base32 (RFC 4648, either case, padded or not) of 16 bytes or more is
// decoded and scanned; upper-case words and random base32 are not findings.
func TestBase32Decoded(t *testing.T) {
	s := newTest(t)
	std := base32.StdEncoding
	raw := base32.StdEncoding.WithPadding(base32.NoPadding)
	email := "ab@northwind.dev" // 16 bytes
	key := "aws_access_key_id=AKIAQWERTYUIOPASDFGH"
	for name, c := range map[string]struct {
		pre, enc, post string
		cat            Category
	}{
		"16 bytes padded":   {"blob ", std.EncodeToString([]byte(email)), " end", CategoryEmail},
		"16 bytes unpadded": {"blob ", raw.EncodeToString([]byte(email)), " end", CategoryEmail},
		"lower case":        {"blob ", strings.ToLower(std.EncodeToString([]byte(email))), " end", CategoryEmail},
		"after json \\n":    {`{"m":"line\n`, raw.EncodeToString([]byte(key)), `"}`, CategoryAWSAccessKey},
		"17 bytes":          {"x=", raw.EncodeToString([]byte("abc@northwind.dev")), "", CategoryEmail},
		// Past 64 characters the first 40 decoded bytes are tested for UTF-8
		// first: a character cut at byte 40 is not a reason to stop.
		"long, cut character":        {"blob ", raw.EncodeToString([]byte(cutAt40)), " end", CategoryEmail},
		"long, cut character, lower": {"blob ", strings.ToLower(std.EncodeToString([]byte(cutAt40))), " end", CategoryEmail},
	} {
		in := c.pre + c.enc + c.post
		fs := s.Scan([]byte(in))
		if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == c.cat }) {
			t.Errorf("%s: %q: findings %v, want %s", name, in, found([]byte(in), fs), c.cat)
			continue
		}
		// Redaction takes the whole run, padding included.
		res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(in))
		if strings.Contains(res.Output, c.enc[:8]) || strings.Contains(res.Output, c.enc[len(c.enc)-4:]) {
			t.Errorf("%s: redacted output still holds the run: %q", name, res.Output)
		}
	}
	random := make([]byte, 40)
	for i := range random {
		random[i] = byte(i*73 + 11)
	}
	for _, in := range []string{
		"const ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF = 1",
		"totp " + raw.EncodeToString(random),
		"blob " + std.EncodeToString([]byte("just some harmless words")),
		"short " + raw.EncodeToString([]byte("a@northwind.dev")), // 15 bytes
		"MAXIMUMCONNECTIONSPERHOSTEXCEEDED",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}

// Connection URLs with an empty user, and values URL-encoded inside query
// strings and nested URLs.
func TestURLForms(t *testing.T) {
	s := newTest(t)
	for _, c := range []struct {
		in, want string
		cat      Category
	}{
		{"postgres://:Str0ngPassw0rd@db.internal:5432/app", "Str0ngPassw0rd", CategoryDBURLPassword},
		{"redis://:s3cr3tValue9x@cache:6379/0", "s3cr3tValue9x", CategoryDBURLPassword},
		{"https://:Hq8x2Lm9pQ@example.org/x", "Hq8x2Lm9pQ", CategoryURLPassword},
		{"GET /v1?password=Hq8%21x2Lm9p&x=1", "Hq8%21x2Lm9p", CategoryPasswordAssignment},
		{"GET /v1?card=4111%201111%201111%201111&x=1", "4111%201111%201111%201111", CategoryCreditCard},
		{"GET /v1?card=4111+1111+1111+1111&x=1", "4111+1111+1111+1111", CategoryCreditCard},
		{"GET /v1?phone=%2B1%20415%20555%200100&x=1", "%2B1%20415%20555%200100", CategoryPhone},
		{"GET /v1?q=%7B%22api_key%22%3A%22Zq8x2Lm9pQw7Er5Ty3Ui1Op0%22%7D", "Zq8x2Lm9pQw7Er5Ty3Ui1Op0", CategoryGenericAPIKey},
		{"https://x.io/cb?redirect=https%3A%2F%2Fu%3AHq8x2Lm9pQ%40db.example.org%2F", "Hq8x2Lm9pQ", CategoryURLPassword},
	} {
		fs := s.Scan([]byte(c.in))
		if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == c.cat && c.in[f.Start:f.End] == c.want }) {
			t.Errorf("%q: findings %v, want %s %q", c.in, found([]byte(c.in), fs), c.cat, c.want)
		}
	}
	for _, in := range []string{
		"postgres://:password@db/app", // the word password
		"postgres://:@db/app",
		"http://:8080/path",
		"https://:x@",
		"GET /v1?q=a%20b%20c&page=2",
		"sum 12+34+56",
		"GET /v1?ids=%5B1%2C2%2C3%5D",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}
