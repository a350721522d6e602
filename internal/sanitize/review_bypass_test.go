package sanitize

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

// mathBold spells ASCII letters and digits in MATHEMATICAL BOLD (U+1D400..),
// which NFKC folds back to ASCII.
func mathBold(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case 'A' <= c && c <= 'Z':
			b.WriteRune(0x1D400 + c - 'A')
		case 'a' <= c && c <= 'z':
			b.WriteRune(0x1D41A + c - 'a')
		case '0' <= c && c <= '9':
			b.WriteRune(0x1D7CE + c - '0')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// digitsIn writes ASCII digits with the digits of another script (zero at
// zero).
func digitsIn(s string, zero rune) string {
	var b strings.Builder
	for _, c := range s {
		if '0' <= c && c <= '9' {
			c = zero + c - '0'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Review of the outbound gate: forms of a value that editors, encoders and
// RTL text produce, each of which once passed the sanitizer in clear. Each
// must be found, and redaction must remove the value (keep is a piece of the
// value that must not survive).
func TestReviewBypassesFound(t *testing.T) {
	s := newTest(t)
	aws := "AKIA" + fake(71, upperNum, 16)
	card := luhnComplete("453914880343646")
	cardG := group4(card)
	iban := ibanFor("DE", "370400440532013000")
	pw := "Hq7" + fake(72, alnum, 12)
	hook := "https://hooks.slack.com/services/T" + fake(73, upperNum, 8) + "/B" + fake(74, upperNum, 8) + "/" + fake(75, alnum, 24)
	jsonSlash := strings.ReplaceAll(hook, "/", `\/`)
	cases := []struct {
		name, in, keep string
		cat            Category
	}{
		// JSON's \/ escape (PHP json_encode writes every / that way).
		{"json slash webhook", `{"url":"` + jsonSlash + `"}`, hook[len(hook)-12:], CategorySlackWebhook},
		{"json slash db url", `{"dsn":"postgres:\/\/app:` + pw + `@db.internal\/app"}`, pw, CategoryDBURLPassword},
		// Invisible characters other than zero-width ones: bidi marks from
		// RTL editors, invisible operators, variation selectors, fillers.
		{"lrm in key", "key " + aws[:8] + "\u200e" + aws[8:], aws[8:], CategoryAWSAccessKey},
		{"rlm in card", "card " + cardG[:9] + "\u200f" + cardG[9:], cardG[10:], CategoryCreditCard},
		{"lre pdf in key", "key \u202a" + aws[:10] + "\u202c" + aws[10:], aws[10:], CategoryAWSAccessKey},
		{"rlo in key", "key " + aws[:6] + "\u202e" + aws[6:], aws[6:], CategoryAWSAccessKey},
		{"isolates in card", "card \u2066" + cardG[:9] + "\u2069" + cardG[9:], cardG[10:], CategoryCreditCard},
		{"arabic letter mark", "card " + cardG[:4] + "\u061c" + cardG[4:], cardG[10:], CategoryCreditCard},
		{"invisible separator", "key " + aws[:8] + "\u2063" + aws[8:], aws[8:], CategoryAWSAccessKey},
		{"variation selector", "key " + aws[:8] + "\ufe0f" + aws[8:], aws[8:], CategoryAWSAccessKey},
		{"combining grapheme joiner", "key " + aws[:8] + "\u034f" + aws[8:], aws[8:], CategoryAWSAccessKey},
		{"mongolian vowel separator", "key " + aws[:8] + "\u180e" + aws[8:], aws[8:], CategoryAWSAccessKey},
		{"hangul filler", "key " + aws[:8] + "\u3164" + aws[8:], aws[8:], CategoryAWSAccessKey},
		{"tag space", "key " + aws[:8] + "\U000e0020" + aws[8:], aws[8:], CategoryAWSAccessKey},
		// Dashes and spaces that word processors put between digit groups.
		{"card en dash", "card " + strings.ReplaceAll(cardG, " ", "\u2013"), card[8:], CategoryCreditCard},
		{"card em dash", "card " + strings.ReplaceAll(cardG, " ", "\u2014"), card[8:], CategoryCreditCard},
		{"card unicode hyphen", "card " + strings.ReplaceAll(cardG, " ", "\u2010"), card[8:], CategoryCreditCard},
		{"card non-breaking hyphen", "card " + strings.ReplaceAll(cardG, " ", "\u2011"), card[8:], CategoryCreditCard},
		{"card minus sign", "card " + strings.ReplaceAll(cardG, " ", "\u2212"), card[8:], CategoryCreditCard},
		{"card en space", "card " + strings.ReplaceAll(cardG, " ", "\u2002"), card[8:], CategoryCreditCard},
		{"card ideographic space", "カード " + strings.ReplaceAll(cardG, " ", "\u3000"), card[8:], CategoryCreditCard},
		{"iban en space", "IBAN " + strings.ReplaceAll(group4(iban), " ", "\u2002"), iban[8:12], CategoryIBAN},
		{"iban ideographic space", "IBAN " + strings.ReplaceAll(group4(iban), " ", "\u3000"), iban[8:12], CategoryIBAN},
		{"ssn en dash", "SSN: 219\u201309\u20139999", "9999", CategoryUSSSN},
		// NFKC forms beyond fullwidth: mathematical alphanumerics, circled
		// letters, the small commercial at.
		{"math bold key", "key " + mathBold(aws), mathBold(aws[8:]), CategoryAWSAccessKey},
		{"math bold card", "card " + mathBold(cardG), mathBold(card[12:]), CategoryCreditCard},
		{"math bold email", "mail " + mathBold("hannah.schmidt") + "@northwind.dev", mathBold("schmidt"), CategoryEmail},
		{"math sans email", "mail hannah.schmidt@" + "\U0001D5C7\U0001D5C8\U0001D5CB\U0001D5CD\U0001D5C1" + "wind.dev", "wind.dev", CategoryEmail},
		{"circled email", "mail \u24d7\u24d0\u24dd\u24dd\u24d0\u24d7.schmidt@northwind.dev", "northwind", CategoryEmail},
		{"small commercial at", "mail hannah.schmidt\ufe6bnorthwind.dev", "northwind", CategoryEmail},
		// Digits of other scripts, as Arabic, Persian and Hindi text write them.
		{"arabic-indic card", "البطاقة " + digitsIn(cardG, 0x660), digitsIn(card[12:], 0x660), CategoryCreditCard},
		{"persian card", "کارت " + digitsIn(cardG, 0x6F0), digitsIn(card[12:], 0x6F0), CategoryCreditCard},
		{"devanagari card", "कार्ड " + digitsIn(cardG, 0x966), digitsIn(card[12:], 0x966), CategoryCreditCard},
		// A key name written with an escape or an invisible character.
		{"escaped key name", `{"pass\u0077ord": "` + pw + `"}`, pw, CategoryPasswordAssignment},
		{"zero-width in key name", "{\"pass\u200bword\": \"" + pw + "\"}", pw, CategoryPasswordAssignment},
		{"fullwidth key name", "{\"ｐａｓｓｗｏｒｄ\": \"" + pw + "\"}", pw, CategoryPasswordAssignment},
		// Internationalized domain names, as German, French or Nordic mail has them.
		{"idn domain", "Kontakt: juergen.weber@bücher-kiste.de, Tel. folgt", "bücher", CategoryEmail},
		{"idn subdomain", "mail anna@post.göteborg.se now", "göteborg", CategoryEmail},
		// The same characters as JSON escapes (Python's json.dumps writes
		// every non-ASCII character so).
		{"json escaped zero-width", `{"k":"` + aws[:8] + `\u200b` + aws[8:] + `"}`, aws[8:], CategoryAWSAccessKey},
		{"json escaped soft hyphen in email", `{"m":"hannah.schmidt@north\u00adwind.dev"}`, "wind.dev", CategoryEmail},
		{"json escaped fullwidth at", `{"m":"hannah.schmidt\uff20northwind.dev"}`, "northwind", CategoryEmail},
		{"json escaped math bold", `{"k":"` + jsonEscapeAll(mathBold(aws)) + `"}`, `\udc00`, CategoryAWSAccessKey},
		{"json escaped en dash card", `{"c":"` + strings.ReplaceAll(cardG, " ", `\u2013`) + `"}`, card[12:], CategoryCreditCard},
		// Percent-encoding applied twice (a URL carried in a query string).
		{"double url-encoded email", "next=%2Flogin%3Fuser%3Dhannah.schmidt%2540northwind.dev", "northwind", CategoryEmail},
		{"double url-encoded key", "q=" + doublePct("key="+aws), doublePct(aws[10:]), CategoryAWSAccessKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := []byte(c.in)
			fs := s.Scan(in)
			ok := false
			for _, f := range fs {
				ok = ok || f.Category == c.cat
			}
			if !ok {
				t.Fatalf("%q: findings %v, want %s", c.in, found(in, fs), c.cat)
			}
			res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, in)
			if strings.Contains(res.Output, c.keep) {
				t.Fatalf("redacted output still holds %q: %q", c.keep, res.Output)
			}
		})
	}
}

// jsonEscapeAll writes s as JSON \uXXXX escapes (UTF-16, surrogate pairs).
func jsonEscapeAll(s string) string {
	var b strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&b, "\\u%04x", u)
	}
	return b.String()
}

// doublePct percent-encodes every byte of s, then the percent signs again.
func doublePct(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString("%25")
		b.WriteString(strings.ToUpper(string("0123456789abcdef"[s[i]>>4]) + string("0123456789abcdef"[s[i]&15])))
	}
	return b.String()
}

// The same decodings must not invent values: text in RTL scripts, emoji
// with variation selectors, dashes in ranges and dates, math in prose, and
// digits of other scripts that are not values stay clean.
func TestReviewDecodingsNoFalsePositives(t *testing.T) {
	s := newTest(t)
	for _, in := range []string{
		"\u200fمرحبا\u200e hello \u202bשלום\u202c ok",
		"I ❤️ this ✔️ and 👍🏽 — great",
		"pages 1024\u20132048, years 2019\u20132024, call 10\u201312 am",
		"range 4000\u20139999 and 1000\u20142000",
		"let \U0001D465 = 2\U0001D466 + 1 for \U0001D45B \u2208 \U0001D441",
		"ⓐ first ⓑ second",
		"الطلب رقم ١٢٣٤ بتاريخ ٢٠٢٤/٠٣/١٥",
		"total 1\u2009234\u2009567 units, 12\u00a0345 km",
		`{"path":"C:\/Users\/me\/file.txt","url":"https:\/\/example.com\/a\/b"}`,
		"%2520 and %252F and 100%25 done",
		"Größe@Höhe ist egal, café@maison",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}

// Review of the outbound gate: passwords in command lines and SQL that no
// key=value form covers.
func TestReviewCommandAndSQLPasswords(t *testing.T) {
	s := newTest(t)
	pw := "Hq7" + fake(76, alnum, 12) + "!"
	for _, in := range []string{
		"curl -u admin:" + pw + " https://api.northwind.dev/v1",
		"curl -s --user admin:" + pw + " https://api.northwind.dev/v1",
		"curl --user=admin:" + pw + " -X POST https://api.northwind.dev",
		"curl -x http://proxy:3128 -U proxyuser:" + pw + " https://northwind.dev",
		"curl --proxy-user \"proxyuser:" + pw + "\" https://northwind.dev",
		"sshpass -p '" + pw + "' ssh deploy@10.0.0.5",
		"sshpass -p " + pw + " scp a.tar deploy@host:",
		"ALTER ROLE app WITH LOGIN PASSWORD '" + pw + "';",
		"CREATE USER app PASSWORD '" + pw + "'",
		"SET PASSWORD FOR 'bob'@'%' = '" + pw + "';",
		"CREATE USER 'bob'@'localhost' IDENTIFIED BY '" + pw + "';",
		"ALTER USER bob identified by \"" + pw + "\";",
	} {
		t.Run(in[:20], func(t *testing.T) {
			fs := s.Scan([]byte(in))
			res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(in))
			if len(fs) == 0 || strings.Contains(res.Output, pw[:10]) {
				t.Fatalf("%q: findings %v, redacted %q", in, found([]byte(in), fs), res.Output)
			}
		})
	}
	// No password there: a user alone, a prompt, a placeholder, prose.
	for _, in := range []string{
		"curl -u admin https://api.northwind.dev",
		"curl -u \"$USER:$PASS\" https://api.northwind.dev",
		"curl -u admin:changeme https://x.dev",
		"curl -sSL -o out.tar.gz https://northwind.dev/a-b:c",
		"sshpass -p \"$SSHPASS\" ssh host",
		"ALTER USER bob PASSWORD EXPIRE;",
		"CREATE USER bob IDENTIFIED BY PASSWORD '*E6CC90B878B948C35E92B003C792C46C58C4AF40';",
		"the password 'expired' yesterday",
		"users identified by their email",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}

// zlib inside base64 (Python's zlib.compress, SAML and other deflated
// payloads) is inflated like gzip.
func TestReviewZlibBase64(t *testing.T) {
	s := newTest(t)
	aws := "AKIA" + fake(77, upperNum, 16)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("aws_access_key_id=" + aws + "\nregion=eu-west-1\n"))
	zw.Close()
	in := `{"blob":"` + base64.StdEncoding.EncodeToString(z.Bytes()) + `"}`
	if fs := s.Scan([]byte(in)); !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryAWSAccessKey }) {
		t.Fatalf("%s: findings %v, want aws_access_key", in, found([]byte(in), fs))
	}
	// A zlib bomb inflates only up to 16 times its size.
	z.Reset()
	zw = zlib.NewWriter(&z)
	zw.Write(bytes.Repeat([]byte("a"), 4<<20))
	zw.Close()
	bomb := []byte("blob " + base64.StdEncoding.EncodeToString(z.Bytes()))
	if out := inflateLimited(z.Bytes(), 16*z.Len()+4096); len(out) > 16*z.Len()+4096 {
		t.Fatalf("inflated %d bytes from %d", len(out), z.Len())
	}
	s.Scan(bomb)
}

// Deny words that only qualify whose password it is no longer veto it, and
// a one-line .netrc entry gives its password.
func TestReviewQualifiedPasswordKeys(t *testing.T) {
	s := newTest(t)
	pw := "Hq7" + fake(78, alnum, 12)
	for _, in := range []string{
		"REDIS_CACHE_PASSWORD=" + pw,
		"PRIMARY_DB_PASSWORD=" + pw,
		"SMTP_PROVIDER_PASSWORD=" + pw,
		"INPUT_PASSWORD: " + pw,
		`{"storage_account_password": "` + pw + `"}`,
		"machine api.northwind.dev login deploy password " + pw,
		"machine api.northwind.dev login deploy password " + pw + " account ops",
	} {
		if fs := s.Scan([]byte(in)); !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryPasswordAssignment }) {
			t.Errorf("%q: findings %v, want password_assignment", in, found([]byte(in), fs))
		}
	}
	for _, in := range []string{
		"POSTGRES_PASSWORD_FILE=/run/secrets/" + pw,
		"password_reset_url=https://northwind.dev/reset/" + pw,
		"cache_key=" + pw,
		"primary_key=" + pw,
		"hashed_password=" + pw,
		"the machine has no password set for login",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}

// Private keys in formats other than PEM: JSON Web Keys with their private
// members, PuTTY key files.
func TestReviewJWKAndPuTTYKeys(t *testing.T) {
	s := newTest(t)
	dv := fake(79, b64url, 43)
	xv := fake(80, b64url, 43)
	ppk := "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: eddsa-key-20240101\nPublic-Lines: 2\n" +
		fake(81, alnum, 64) + "\n" + fake(82, alnum, 20) + "\nPrivate-Lines: 1\n" + dv + "\nPrivate-MAC: " + fake(83, hexLower, 64) + "\n"
	for name, in := range map[string]string{
		"okp":         `{"kty":"OKP","crv":"Ed25519","d":"` + dv + `","x":"` + xv + `","kid":"k1"}`,
		"ec spaced":   "{\n  \"kty\": \"EC\",\n  \"crv\": \"P-256\",\n  \"x\": \"" + xv + "\",\n  \"d\" : \"" + dv + "\"\n}",
		"rsa crt":     `{"keys":[{"kty":"RSA","n":"` + xv + `","e":"AQAB","p":"` + dv + `"}]}`,
		"escaped":     `{"jwk":"{\"kty\":\"OKP\",\"d\":\"` + dv + `\",\"x\":\"` + xv + `\"}"}`,
		"putty":       ppk,
		"putty json":  `{"file":"` + strings.ReplaceAll(ppk, "\n", `\n`) + `"}`,
		"after noise": `"kty" ` + strings.Repeat("x", 200) + ` {"kty":"OKP","d":"` + dv + `"}`,
		"after open":  `{"kty" ` + strings.Repeat("y", 9000) + ` {"kty":"OKP","d":"` + dv + `"}`,
		"second key":  `[{"kty":"OKP","x":"` + xv + `"},{"kty":"OKP","d":"` + dv + `"}]`,
	} {
		res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(in))
		if strings.Contains(res.Output, dv) {
			t.Errorf("%s: private key material in the output: %q", name, res.Output)
		}
	}
	// Public keys only: no findings.
	for _, in := range []string{
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + xv + `","kid":"k1","use":"sig"}]}`,
		`{"kty":"RSA","n":"` + xv + `","e":"AQAB"},{"d":"` + dv + `"}`,
		"Private-Lines: see the PuTTY manual",
	} {
		if fs := s.Scan([]byte(in)); slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryPrivateKey }) {
			t.Errorf("%q: findings %v, want no private key", in, found([]byte(in), fs))
		}
	}
}

// Bearer URLs: an Azure shared access signature and a Discord webhook carry
// their credential in the URL.
func TestReviewBearerURLs(t *testing.T) {
	s := newTest(t)
	sig := fake(84, alnum, 43) + "%3D"
	tok := fake(85, b64url, 68)
	for _, in := range []string{
		"https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-01-01T00:00:00Z&sig=" + sig,
		`{"url":"https://acct.blob.core.windows.net/c?sp=racwdl&st=2026-01-01&sv=2022-11-02&sr=c&sig=` + sig + `"}`,
		"post to https://discord.com/api/webhooks/123456789012345678/" + tok,
		"DISCORD_WEBHOOK=https://discordapp.com/api/webhooks/123456789012345678/" + tok,
	} {
		res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(in))
		if strings.Contains(res.Output, sig) || strings.Contains(res.Output, tok) {
			t.Errorf("%q: credential in the output: %q", in, res.Output)
		}
	}
	for _, in := range []string{
		"https://example.com/search?q=sig=abc&sv=1",
		"https://api.example.com/hooks?sig=" + sig, // no SAS version: not a SAS URL
		"https://example.com/api/webhooks/123456789012345678/" + tok,
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}

// Addresses spelled out against harvesters are addresses.
func TestReviewSpelledOutEmail(t *testing.T) {
	s := newTest(t)
	for _, in := range []string{
		"Contact: hannah.schmidt [at] northwind [dot] dev",
		"mail hannah.schmidt(at)northwind.dev today",
		"HANNAH.SCHMIDT {AT} NORTHWIND {DOT} DEV",
		`{"contact":"hannah.schmidt [at] northwind.dev"}`,
	} {
		res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(in))
		if strings.Contains(strings.ToLower(res.Output), "northwind") {
			t.Errorf("%q: address in the output: %q", in, res.Output)
		}
	}
	for _, in := range []string{
		"we meet [at] noon (at the office) {dot} matrix",
		`{"items":[1,2],"f":(a)}`,
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
}
