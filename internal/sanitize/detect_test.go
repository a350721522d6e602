package sanitize

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

type detectCase struct {
	name  string
	text  string
	cat   Category // expected category of value; "" means value must not be found
	value string
}

func runDetect(t *testing.T, cases []detectCase) {
	t.Helper()
	s := newTest(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.text)
			fs := s.Scan(data)
			if tc.cat == "" {
				if overlaps(data, fs, tc.value) {
					t.Errorf("%q: found %v, want nothing on %q", tc.text, found(data, fs), tc.value)
				}
				return
			}
			if !hasFinding(data, fs, tc.cat, tc.value) {
				t.Errorf("%q: found %v, want %s %q", tc.text, found(data, fs), tc.cat, tc.value)
			}
		})
	}
}

func TestDetectPII(t *testing.T) {
	visa := luhnComplete("411111111111111")
	visaBad := visa[:15] + string('0'+(visa[15]-'0'+1)%10)
	amex := luhnComplete("37828224631000")
	mc := luhnComplete("555555555555444")
	disc := luhnComplete("601111111111111")
	noBrand := luhnComplete("123456789012345")
	de := ibanFor("DE", "370400440532013000")
	gb := ibanFor("GB", "WEST12345698765432")
	deBad := de[:len(de)-1] + string('0'+(de[len(de)-1]-'0'+1)%10)
	runDetect(t, []detectCase{
		// email
		{"email plain", "mail alice.smith@example.com today", CategoryEmail, "alice.smith@example.com"},
		{"email display name, UTF-8 local part (RFC 6531)", "From: Zoë <zoe_ø@example.org>", CategoryEmail, "zoe_ø@example.org"},
		{"email after a CJK label", "邮箱：wei.zhang@example.cn", CategoryEmail, "wei.zhang@example.cn"},
		{"not email: Message-ID", "Message-ID: <4f1c2a9e-77b1-4c1e-9d3a-0c5e2b7d9f10@mail.example.com>", "", "4f1c2a9e-77b1-4c1e-9d3a-0c5e2b7d9f10@mail.example.com"},
		{"not email: In-Reply-To", "In-Reply-To: <CAF.ab12cd34@mail.gmail.com>", "", "ab12cd34@mail.gmail.com"},
		{"email in angle brackets", "To: Renée Fournier <renee@globex.test>", CategoryEmail, "renee@globex.test"},
		{"email after json escape", `{"body":"hi\nbob@initech.io"}`, CategoryEmail, "bob@initech.io"},
		{"email mailto", "mailto:ops@acme.example", CategoryEmail, "ops@acme.example"},
		{"not email: image name", "icon@2x.png", "", "icon@2x.png"},
		{"not email: package version", "lodash@4.17.21", "", "lodash@4.17.21"},
		{"not email: docker digest", "image@sha256:abcd", "", "image@sha256"},
		{"not email: url userinfo", "ftp://deploy@files.example.com/x", "", "deploy@files.example.com"},
		// phone
		{"phone e164", "call +4915885054038 now", CategoryPhone, "+4915885054038"},
		{"phone +1 dashed", "tel +1-544-392-5682.", CategoryPhone, "+1-544-392-5682"},
		{"phone french", "Mobile: +33 6 13 51 25 93", CategoryPhone, "+33 6 13 51 25 93"},
		{"phone nanp dashed", "TEL=940-244-9282", CategoryPhone, "940-244-9282"},
		{"phone nanp parens", "office (415) 555-0100 ext", CategoryPhone, "(415) 555-0100"},
		{"phone nanp dotted", "fax 415.555.0100", CategoryPhone, "415.555.0100"},
		{"phone uk trunk", "ring 020 7946 0958 please", CategoryPhone, "020 7946 0958"},
		{"phone bare with context", "phone: 4155550100", CategoryPhone, "4155550100"},
		{"not phone: epoch", "the job started at epoch 1712184344.", "", "1712184344"},
		{"not phone: date", "on 2024-11-28 at 09:30", "", "2024-11-28"},
		{"not phone: order id", "order ORD-2024-955605 shipped", "", "2024-955605"},
		{"not phone: nanp area 1xx", "id 155-555-0100", "", "155-555-0100"},
		{"not phone: money", "total $11,577.99", "", "11,577.99"},
		// credit cards
		{"visa spaced", "card " + group4(visa) + " declined", CategoryCreditCard, group4(visa)},
		{"visa dashed", "card " + strings.ReplaceAll(group4(visa), " ", "-"), CategoryCreditCard, strings.ReplaceAll(group4(visa), " ", "-")},
		{"amex compact", "pan=" + amex, CategoryCreditCard, amex},
		{"mastercard", "card: " + mc, CategoryCreditCard, mc},
		{"discover", "card: " + disc, CategoryCreditCard, disc},
		{"not card: luhn fails", "card " + visaBad, "", visaBad},
		{"not card: no brand", "ref " + noBrand, "", noBrand},
		{"not card: masked", "card **** **** **** 4242", "", "4242"},
		// IBAN
		{"iban compact", "IBAN: " + de, CategoryIBAN, de},
		{"iban grouped", "wire to " + group4(gb) + ".", CategoryIBAN, group4(gb)},
		{"not iban: mod97 fails", "IBAN " + deBad, "", deBad},
		{"not iban: mod97 fails grouped, no phone inside", "IBAN " + group4(deBad), "", group4(deBad)},
		// SSN
		{"ssn dashed", "SSN 123-45-6789 on file", CategoryUSSSN, "123-45-6789"},
		{"ssn in parens", "Verify the SSN (058-56-1401).", CategoryUSSSN, "058-56-1401"},
		{"ssn undashed with context", "ssn=123456789", CategoryUSSSN, "123456789"},
		{"ssn undashed with words", "Social Security number 123456789", CategoryUSSSN, "123456789"},
		{"not ssn: undashed no context", "invoice 123456789 paid", "", "123456789"},
		{"not ssn: area 000", "id 000-12-3456", "", "000-12-3456"},
		{"not ssn: area 666", "id 666-12-3456", "", "666-12-3456"},
		{"not ssn: area 9xx", "id 912-12-3456", "", "912-12-3456"},
		{"not ssn: group 00", "id 123-00-4567", "", "123-00-4567"},
		{"not ssn: serial 0000", "id 123-45-0000", "", "123-45-0000"},
		{"not ssn: masked", "SSN XXX-XX-6789", "", "6789"},
		// IPv4
		{"ipv4", "from 10.65.174.53 today", CategoryIPv4, "10.65.174.53"},
		{"ipv4 loopback", "bind 127.0.0.1:8080", CategoryIPv4, "127.0.0.1"},
		{"ipv4 cidr", "allow 192.168.0.0/16", CategoryIPv4, "192.168.0.0"},
		{"ipv4 in csv", "1000,Renée,105.130.126.59,active", CategoryIPv4, "105.130.126.59"},
		{"not ipv4: build number", "build 2024.11.28.1337", "", "2024.11.28.1337"},
		{"not ipv4: octet > 255", "x 256.1.1.1 y", "", "256.1.1.1"},
		{"not ipv4: version", "version 1.18.19", "", "1.18.19"},
		{"not ipv4: v-prefixed", "release v1.2.3.4", "", "1.2.3.4"},
		// IPv6
		{"ipv6 doc", "addr 2001:db8:ae37:7261::8199:d95d.", CategoryIPv6, "2001:db8:ae37:7261::8199:d95d"},
		{"ipv6 loopback", `"remote_addr": "::1"`, CategoryIPv6, "::1"},
		{"ipv6 link local", "from fe80::be0a:917d:67ab:fcb9 ok", CategoryIPv6, "fe80::be0a:917d:67ab:fcb9"},
		{"ipv6 bracketed", "http://[2001:db8::1]:8080/", CategoryIPv6, "2001:db8::1"},
		{"not ipv6: mac", "mac aa:bb:cc:dd:ee:ff", "", "aa:bb:cc:dd:ee:ff"},
		{"not ipv6: time", "at 12:34:56", "", "12:34:56"},
		{"not ipv6: c++", "std::vector<int>", "", "d::"},
	})
}

func TestDetectSecrets(t *testing.T) {
	aws := "AKIA" + fake(1, upperNum, 16)
	ghp := "ghp_" + fake(2, alnum, 36)
	ghpFake := "ghp_" + strings.Repeat("X", 36)
	fine := "github_pat_" + fake(3, alnum+"_", 82)
	glpat := "glpat-" + fake(4, b64url, 20)
	slack := "xoxb-" + fake(5, "0123456789", 12) + "-" + fake(6, "0123456789", 11) + "-" + fake(7, alnum, 24)
	hook := "https://hooks.slack.com/services/T" + fake(8, upperNum, 8) + "/B" + fake(9, upperNum, 8) + "/" + fake(10, alnum, 24)
	stripe := "sk_live_" + fake(11, alnum, 24)
	stripeFake := "sk_live_" + strings.Repeat("x", 24)
	pk := "pk_live_" + fake(12, alnum, 24)
	openai := "sk-proj-" + fake(13, b64url, 56) + "T3BlbkFJ" + fake(14, b64url, 28)
	anthropic := "sk-ant-api03-" + fake(15, b64url, 93) + "AA"
	google := "AIza" + fake(16, b64url, 35)
	npm := "npm_" + fake(17, alnum, 36)
	twilio := "SK" + fake(18, hexLower, 32)
	sendgrid := "SG." + fake(19, b64url, 22) + "." + fake(20, b64url, 43)
	jwt := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"agent-7","iss":"https://sts.example"}`)) + "." + fake(21, b64url, 43)
	awsSecret := fake(22, alnum+"/+", 40)
	generic := fake(23, hexLower, 40)
	pemBody := strings.Join([]string{fake(24, alnum+"+/", 64), fake(25, alnum+"+/", 64), fake(26, alnum+"+/", 40)}, "\n")
	pem := "-----BEGIN RSA PRIVATE KEY-----\n" + pemBody + "\n-----END RSA PRIVATE KEY-----"
	pemJSON := strings.ReplaceAll(pem, "\n", `\n`)
	pemYAML := "-----BEGIN EC PRIVATE KEY-----\n    " + strings.ReplaceAll(pemBody, "\n", "\n    ") + "\n    -----END EC PRIVATE KEY-----"
	dbpw := fake(27, alnum+"-_~", 20)
	runDetect(t, []detectCase{
		{"aws access key", "key id " + aws + " rotated", CategoryAWSAccessKey, aws},
		{"not aws: documented example", "AKIAIOSFODNN7EXAMPLE", "", "AKIAIOSFODNN7EXAMPLE"},
		{"github pat", "token " + ghp, CategoryGitHubToken, ghp},
		{"github fine-grained", "GITHUB_TOKEN=" + fine, CategoryGitHubToken, fine},
		{"not github: placeholder", "token " + ghpFake, "", ghpFake},
		{"gitlab", "The mirror job uses " + glpat, CategoryGitLabToken, glpat},
		{"slack bot token", "SLACK_BOT_TOKEN=" + slack, CategorySlackToken, slack},
		{"slack webhook", "post to " + hook + " when done", CategorySlackWebhook, hook},
		{"stripe", "key " + stripe, CategoryStripeKey, stripe},
		{"not stripe: placeholder", "key " + stripeFake, "", stripeFake},
		{"not stripe: publishable", "key " + pk, "", pk},
		{"openai", "OPENAI_API_KEY=" + openai, CategoryOpenAIKey, openai},
		{"not openai: sk-learn", "pip install sk-learn and sk-SK", "", "sk-learn"},
		{"anthropic", "ANTHROPIC_API_KEY=" + anthropic, CategoryAnthropicKey, anthropic},
		{"google", "maps key is " + google, CategoryGoogleAPIKey, google},
		{"npm", "NPM_TOKEN=" + npm, CategoryNPMToken, npm},
		{"twilio", "TWILIO_API_KEY=" + twilio, CategoryTwilioKey, twilio},
		{"sendgrid", "SendGrid key " + sendgrid, CategorySendGridKey, sendgrid},
		{"jwt", "Authorization: Bearer " + jwt, CategoryJWT, jwt},
		{"not jwt: placeholder parts", `"api_key": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.<payload>.<signature>"`, "", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"},
		{"private key", "key:\n" + pem + "\n", CategoryPrivateKey, pem},
		{"private key json escaped", `{"tls_key":"` + pemJSON + `"}`, CategoryPrivateKey, pemJSON},
		{"private key yaml block", "tls_key: |\n    " + pemYAML + "\n", CategoryPrivateKey, pemYAML},
		{"not private key: redacted", "-----BEGIN PRIVATE KEY-----\n(key material removed)\n-----END PRIVATE KEY-----", "", "key material"},
		{"not private key: dots", "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----", "", "-----BEGIN"},
		{"not private key: public", "-----BEGIN PUBLIC KEY-----\n" + pemBody + "\n-----END PUBLIC KEY-----", "", "-----BEGIN"},
		{"db url password", "DATABASE_URL=postgres://app:" + dbpw + "@db.internal:5432/app", CategoryDBURLPassword, dbpw},
		{"db url jdbc", "jdbc:mysql://admin:" + dbpw + "@10.0.0.5/x", CategoryDBURLPassword, dbpw},
		{"not db url: literal password", "postgres://app:password@db/app", "", "password"},
		{"not db url: variable", "postgres://app:${DB_PASSWORD}@db/app", "", "DB_PASSWORD"},
		{"password env", "ADMIN_PASSWORD=Cobalt775.", CategoryPasswordAssignment, "Cobalt775."},
		{"password json", `{"password": "Orchid42!"}`, CategoryPasswordAssignment, "Orchid42!"},
		{"password nested json", `{"arguments": "{\"password\": \"Lantern22_\"}"}`, CategoryPasswordAssignment, "Lantern22_"},
		{"password yaml", "db:\n  password: \"Winter601-\"\n", CategoryPasswordAssignment, "Winter601-"},
		{"password prose", "The config has db_password = Q#x4rbsPu7J824M#2 for now", CategoryPasswordAssignment, "Q#x4rbsPu7J824M#2"},
		{"password is", "the password is Saffron492= okay", CategoryPasswordAssignment, "Saffron492="},
		{"password flag", "mysql --password Tundra93x -h db", CategoryPasswordAssignment, "Tundra93x"},
		{"not password: placeholder", "PASSWORD=changeme", "", "changeme"},
		{"not password: mask", `"password": "********"`, "", "********"},
		{"not password: env reference", "password: ${DB_PASSWORD}", "", "DB_PASSWORD"},
		{"not password: variable name", "password=DB_PASSWORD", "", "DB_PASSWORD"},
		{"not password: policy", "password_min_length: 12", "", "12"},
		{"aws secret key context", "aws_secret_access_key = " + awsSecret, CategoryAWSSecretKey, awsSecret},
		{"aws secret key prose", "The secret access key is `" + awsSecret + "`", CategoryAWSSecretKey, awsSecret},
		{"generic api key", "api_key: " + generic, CategoryGenericAPIKey, generic},
		{"generic token prose", "token: " + generic, CategoryGenericAPIKey, generic},
		{"bearer", "Authorization: Bearer " + fake(28, alnum, 32), CategoryGenericAPIKey, fake(28, alnum, 32)},
		{"not generic: page token", `"next_page_token": "` + fake(29, b64url, 40) + `"`, "", fake(29, b64url, 40)},
		{"not generic: idempotency key", `"idempotency_key": "` + fake(30, hexLower, 32) + `"`, "", fake(30, hexLower, 32)},
		{"not generic: public key", `"public_key": "` + fake(31, alnum, 60) + `"`, "", fake(31, alnum, 60)},
		{"not generic: token count", `"max_tokens": 4096`, "", "4096"},
		{"not generic: placeholder", "api_key: YOUR_API_KEY_HERE", "", "YOUR_API_KEY_HERE"},
		{"csv password column", "id,name,password\n1,Ann,nimbus%Tundra93\n2,Bo,n/a\n", CategoryPasswordAssignment, "nimbus%Tundra93"},
		{"csv ssn column", "id,ssn,order\n1000,184515421,ORD-1\n", CategoryUSSSN, "184515421"},
		{"not csv: placeholder", "id,name,password\n1,Ann,n/a\n", "", "n/a"},
	})
}

// The inline "gitleaks:allow" marker must not switch the sanitizer off.
func TestGitleaksAllowIgnored(t *testing.T) {
	s := newTest(t)
	v := "ghp_" + fake(40, alnum, 36)
	data := []byte(`token = "` + v + `" # gitleaks:allow`)
	if !overlaps(data, s.Scan(data), v) {
		t.Fatal("gitleaks:allow suppressed a finding")
	}
}

// A secret hidden in base64 inside a string is found, and the whole base64
// run is reported.
func TestBase64Nested(t *testing.T) {
	s := newTest(t)
	inner := "export AWS key AKIA" + fake(41, upperNum, 16) + " now please"
	enc := base64.StdEncoding.EncodeToString([]byte(inner))
	data := []byte(`{"attachment": "` + enc + `"}`)
	fs := s.Scan(data)
	if !hasFinding(data, fs, CategoryAWSAccessKey, enc) {
		t.Fatalf("found %v, want aws_access_key over the base64 run", found(data, fs))
	}
	// Binary payloads (an image) are left alone.
	img := base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00\x00\x00\x00"))
	data = []byte(`preview data:image/png;base64,` + img)
	if fs := s.Scan(data); len(fs) != 0 {
		t.Fatalf("image flagged: %v", found(data, fs))
	}
}

// Offsets are bytes into the input, whatever the script around the value.
func TestUnicodeOffsets(t *testing.T) {
	s := newTest(t)
	email := "kenji.watanabe@example.org"
	ip := "192.0.2.124"
	text := "好的，我马上处理。 👍🏽 Müller → " + email + " — Привет, مرحبا " + ip + " 🚀"
	data := []byte(text)
	fs := s.Scan(data)
	for _, want := range []struct {
		cat Category
		v   string
	}{{CategoryEmail, email}, {CategoryIPv4, ip}} {
		if !hasFinding(data, fs, want.cat, want.v) {
			t.Fatalf("found %v, want %s %q at its byte offset", found(data, fs), want.cat, want.v)
		}
	}
	for _, f := range fs {
		if string(data[f.Start:f.End]) != email && string(data[f.Start:f.End]) != ip {
			t.Errorf("unexpected finding %s %q", f.Category, data[f.Start:f.End])
		}
		// The rune offset differs from the byte offset here.
		if runes := len([]rune(text[:f.Start])); runes == f.Start {
			t.Errorf("test text does not exercise multi-byte offsets")
		}
	}
}

// Findings are sorted and never overlap; overlapping detectors merge into
// one finding with the most specific category.
func TestMergeOverlaps(t *testing.T) {
	s := newTest(t)
	gh := "ghp_" + fake(42, alnum, 36)
	data := []byte(`{"api_key": "` + gh + `", "token": "` + gh + `"}`)
	fs := s.Scan(data)
	if len(fs) != 2 {
		t.Fatalf("got %v, want two github_token findings", found(data, fs))
	}
	for i, f := range fs {
		if f.Category != CategoryGitHubToken {
			t.Errorf("finding %d is %s, want github_token (provider beats generic)", i, f.Category)
		}
		if i > 0 && f.Start < fs[i-1].End {
			t.Errorf("findings overlap: %v", fs)
		}
	}
	got := merge([]Finding{
		{CategoryGenericAPIKey, "a", 10, 20},
		{CategoryPhone, "b", 0, 5},
		{CategoryJWT, "c", 15, 30},
		{CategoryEmail, "d", 30, 35},
	})
	want := []Finding{{CategoryPhone, "b", 0, 5}, {CategoryJWT, "c", 10, 30}, {CategoryEmail, "d", 30, 35}}
	if len(got) != len(want) {
		t.Fatalf("merge = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("merge = %v, want %v", got, want)
		}
	}
}

// JSON \u escapes cannot hide a value from the detectors, and the finding
// covers the escaped text.
func TestUnicodeEscapesDecoded(t *testing.T) {
	s := newTest(t)
	key := "AKIA" + fake(43, upperNum, 16)
	esc := `\u0041\u004b` + key[2:]
	data := []byte(`{"note": "` + esc + `", "mail": "bob\u0040initech.io"}`)
	fs := s.Scan(data)
	if !hasFinding(data, fs, CategoryAWSAccessKey, esc) {
		t.Fatalf("found %v, want aws_access_key over %q", found(data, fs), esc)
	}
	if !hasFinding(data, fs, CategoryEmail, `bob\u0040initech.io`) {
		t.Fatalf("found %v, want the escaped email", found(data, fs))
	}
	c, err := s.Apply(peerA, scrub, data)
	if err != nil || bytes.Contains(c.Bytes(), []byte(key[4:])) {
		t.Fatalf("Apply = %s, %v", c.Bytes(), err)
	}
}

// Base64 of non-ASCII text is decoded too, wherever its runes fall.
func TestBase64NonASCII(t *testing.T) {
	s := newTest(t)
	for i := 0; i < 4; i++ {
		inner := strings.Repeat("é", i) + "你好，我的邮箱是 wang.wei@example.com，谢谢。请回复。"
		enc := base64.StdEncoding.EncodeToString([]byte(inner))
		data := []byte("payload " + enc + " end")
		if fs := s.Scan(data); !hasFinding(data, fs, CategoryEmail, strings.TrimRight(enc, "=")) && !hasFinding(data, fs, CategoryEmail, enc) {
			t.Fatalf("shift %d: found %v in %q", i, found(data, fs), enc)
		}
	}
}

func TestDetectMore(t *testing.T) {
	runDetect(t, []detectCase{
		{"xml password", "<password>Hunter42!x</password>", CategoryPasswordAssignment, "Hunter42!x"},
		{"xml api key", "<apiKey>" + fake(44, hexLower, 32) + "</apiKey>", CategoryGenericAPIKey, fake(44, hexLower, 32)},
		{"url password, not an email", "mongodb+srv://svc:Zx9!kk2pQ@cluster0.example.net/db", CategoryDBURLPassword, "Zx9!kk2pQ"},
		{"https userinfo", "https://user:Tr0ub4dor3x@git.example.com/r.git", CategoryURLPassword, "Tr0ub4dor3x"},
		{"email after a url path", "see https://example.com/contact/ann@example.com", CategoryEmail, "ann@example.com"},
		{"plus-addressed email", "reach John.Doe+billing@Mail.Example.CO.UK today", CategoryEmail, "John.Doe+billing@Mail.Example.CO.UK"},
		{"phone +1 parens", "or +1 (415) 555-0100", CategoryPhone, "+1 (415) 555-0100"},
		{"phone json key", `{"phone_number":"4155550100"}`, CategoryPhone, "4155550100"},
		{"ssn spaced with context", "SSN: 123 45 6789", CategoryUSSSN, "123 45 6789"},
		{"ipv6 uppercase full", "from 2001:DB8:0:0:8:800:200C:417A", CategoryIPv6, "2001:DB8:0:0:8:800:200C:417A"},
	})
}

// The prefilter's parallel walks find exactly what one walk finds, in order,
// including occurrences that straddle the cut points.
func TestACWalksAgree(t *testing.T) {
	m := newACMatcher([]string{"ab", "abc", "bca", "-----begin", "key", "eyj", "s."})
	for _, n := range []int{255, 256, 257, 300, 641, 1023, 1024, 1025, 4096, 4099, 10007} {
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			b.WriteString([]string{"abc", "a", "-----BEGIN", "xkeyx", "eyJ", "s.", "bca", " "}[i*7%8])
		}
		data := []byte(b.String()[:n])
		got := m.hits(data, nil)
		want := m.walk(data, 0, len(data), 0, nil)
		if len(got) != len(want) {
			t.Fatalf("n=%d: %d hits, want %d", n, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("n=%d: hit %d = %v, want %v", n, i, got[i], want[i])
			}
		}
	}
}

func TestIndexFold(t *testing.T) {
	for _, tc := range []struct {
		s, lit string
		want   int
	}{
		{"", "a", -1}, {"abc", "", 0}, {"xxKind: secret", "kind:", 2}, {"KIND", "kind", 0},
		{"kinkind", "kind", 3}, {"ki", "kind", -1}, {"--MOUNT=type", "--mount", 0}, {"a.b", ".b", 1},
	} {
		if got := indexFold([]byte(tc.s), tc.lit); got != tc.want {
			t.Errorf("indexFold(%q, %q) = %d, want %d", tc.s, tc.lit, got, tc.want)
		}
	}
}

// A peer ID is a public key: it must never be flagged as a secret, in any
// position a generic rule would otherwise catch; a real token next to it still is.
func TestDIDKeyIsPublic(t *testing.T) {
	t.Parallel()
	s := newTest(t)
	did := "did:key:z6MkomtMT7syyC7NU7hphF4ufRo4vQpTYcGHyNZm5ZGF2U1b"
	for _, in := range []string{
		`{"peer":"` + did + `"}`,
		`token=` + did,
		`api_key: "` + did + `"`,
		`caller ` + did + ` asked`,
	} {
		if f := s.Scan([]byte(in)); len(f) != 0 {
			t.Errorf("Scan(%q) = %v, want no findings", in, f)
		}
	}
	mixed := `{"peer":"` + did + `","token":"ghp_` + strings.Repeat("aB3", 12) + `"}`
	if f := s.Scan([]byte(mixed)); len(f) != 1 || f[0].Category != CategoryGitHubToken {
		t.Errorf("Scan(mixed) = %v, want only the GitHub token", f)
	}
}
