package sanitize

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

// Forms the closing note of issue 10 listed as still missed, each with the
// near misses that must stay untouched.

func TestIBANAnyCase(t *testing.T) {
	de := ibanFor("DE", "370400440532013000")
	gb := ibanFor("GB", "WEST12345698765432")
	deBad := de[:len(de)-1] + string('0'+(de[len(de)-1]-'0'+1)%10)
	lower := strings.ToLower
	mixed := "Gb" + gb[2:4] + "West" + gb[8:]
	runDetect(t, []detectCase{
		{"lower compact", "iban: " + lower(gb), CategoryIBAN, lower(gb)},
		{"lower grouped", "pay to " + lower(group4(gb)) + " today", CategoryIBAN, lower(group4(gb))},
		{"lower country, digits", "konto " + lower(de), CategoryIBAN, lower(de)},
		{"mixed case", "IBAN " + mixed, CategoryIBAN, mixed},
		{"upper country, lower bank code", "IBAN " + gb[:4] + lower(gb[4:8]) + gb[8:], CategoryIBAN, gb[:4] + lower(gb[4:8]) + gb[8:]},
		{"lower dotted", "iban " + strings.ReplaceAll(lower(group4(de)), " ", "."), CategoryIBAN, strings.ReplaceAll(lower(group4(de)), " ", ".")},
		{"lower in json", `{"iban":"` + lower(gb) + `"}`, CategoryIBAN, lower(gb)},
		{"not iban: lower, mod97 fails", "iban " + lower(deBad), "", lower(deBad)},
		{"not iban: lower grouped, mod97 fails", "iban " + lower(group4(deBad)), "", lower(group4(deBad))},
		{"not iban: inside a word", "x" + lower(gb), "", lower(gb)},
		{"not iban: hex hash", "commit de89a3704f0440532013000b1c2d3e4f5a6b7c8d", "", "de89a3704f0440532013000b1c2d3e4f5a6b7c8d"},
		{"not iban: uuid", "id de305d54-75b4-431b-adbe-eb4b8f89b7bc", "", "de305d54-75b4-431b-adbe-eb4b8f89b7bc"},
		{"not iban: version", "go1.26.0 and gb18030 and de10", "", "gb18030"},
		{"not iban: sha256 of lower", "sha256 " + strings.Repeat("de89", 16), "", strings.Repeat("de89", 16)},
	})
	// Every case of every letter passes when the upper-case form does.
	s := newTest(t)
	for mask := 0; mask < 1<<6; mask++ {
		b := []byte(gb)
		for k, pos := range []int{0, 1, 4, 5, 6, 7} {
			if mask&(1<<k) != 0 {
				b[pos] = b[pos] - 'A' + 'a'
			}
		}
		data := []byte("IBAN " + string(b) + ".")
		if !hasFinding(data, s.Scan(data), CategoryIBAN, string(b)) {
			t.Errorf("%s: no iban finding", b)
		}
	}
}

func TestCookieHeaders(t *testing.T) {
	sid := fake(60, alnum, 32)
	csrf := fake(61, alnum, 32)
	jsess := fake(62, hexLower, 32)
	php := fake(63, "abcdefghijklmnopqrstuv0123456789", 26)
	rnd := fake(64, b64url, 40)
	signed := "s%3A" + fake(65, b64url, 32) + "." + fake(66, b64url, 43)
	runDetect(t, []detectCase{
		{"request header, session", "Cookie: sessionid=" + sid + "; csrftoken=" + csrf, CategoryGenericAPIKey, sid},
		{"request header, csrf", "Cookie: sessionid=" + sid + "; csrftoken=" + csrf, CategoryGenericAPIKey, csrf},
		{"set-cookie with attributes", "Set-Cookie: JSESSIONID=" + jsess + "; Path=/; HttpOnly; Secure", CategoryGenericAPIKey, jsess},
		{"lower case, among trackers", "cookie: _ga=GA1.2.1234567.1234567; theme=dark; PHPSESSID=" + php, CategoryGenericAPIKey, php},
		{"json header", `{"headers":{"Cookie":"session=` + rnd + `; lang=en"}}`, CategoryGenericAPIKey, rnd},
		{"escaped json header", `{"raw":"{\"Cookie\": \"sid=` + rnd + `\"}"}`, CategoryGenericAPIKey, rnd},
		{"signed express cookie", "Set-Cookie: connect.sid=" + signed + "; Path=/", CategoryGenericAPIKey, signed},
		{"random value, plain name", "Cookie: prefs=dark; cf_bm=" + rnd, CategoryGenericAPIKey, rnd},
		{"quoted value", `Cookie: auth_token="` + sid + `"`, CategoryGenericAPIKey, sid},
		{"curl --cookie", "curl --cookie 'sessionid=" + sid + "' https://x.example", CategoryGenericAPIKey, sid},
		{"curl -H", `curl -H "Cookie: remember_user_token=` + sid + `" https://x.example`, CategoryGenericAPIKey, sid},
		{"header in a log line", "GET /api 200 cookie=ASP.NET_SessionId=" + php + "; x=1", CategoryGenericAPIKey, php},
		// The names stay, so the header still says which cookies were sent.
		{"name kept", "Cookie: sessionid=" + sid + "; csrftoken=" + csrf, "", "sessionid"},
		{"name kept, csrf", "Cookie: sessionid=" + sid + "; csrftoken=" + csrf, "", "csrftoken="},
		{"not: attributes", "Set-Cookie: JSESSIONID=" + jsess + "; Path=/app; Domain=example.com; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Max-Age=3600", "", "Wed, 21 Oct 2026"},
		{"not: tracker counter", "Cookie: _ga=GA1.2.1234567.1234567; _gid=GA1.2.7654321.1700000000", "", "GA1.2.1234567.1234567"},
		{"not: preferences", "Cookie: theme=dark; lang=en-US; sidebar=collapsed; tz=Europe/Berlin", "", "collapsed"},
		{"not: deleted session", "Set-Cookie: sessionid=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "", "deleted"},
		{"not: author name", "Cookie: author=JohnSmith; lang=en", "", "JohnSmith"},
		{"not: placeholder", "Cookie: sessionid=<SESSION_ID>", "", "SESSION_ID"},
		{"not: prose", "The cookie: a small file the browser keeps, sessionid=yes or no.", "", "yes"},
		{"not: js", `document.cookie = "user=John; path=/"`, "", "John"},
		{"session uuid", "Cookie: session_id=de305d54-75b4-431b-adbe-eb4b8f89b7bc", CategoryGenericAPIKey, "de305d54-75b4-431b-adbe-eb4b8f89b7bc"},
		{"not: uuid under a plain name", "Cookie: visitor=de305d54-75b4-431b-adbe-eb4b8f89b7bc; lang=en", "", "de305d54-75b4-431b-adbe-eb4b8f89b7bc"},
		{"not: hex digest under a plain name", "Cookie: etag=v1; build=" + "1f3870be274f6c49b3e31a0c6728957f", "", "1f3870be274f6c49b3e31a0c6728957f"},
		{"not: uuid-free words", "Cookie: consent=accepted_all_categories", "", "accepted_all_categories"},
	})
}

// sepHex writes b as hex pairs joined by sep, as openssl, ssh-keygen and
// Windows tools print keys.
func sepHex(b []byte, sep string) string {
	h := hex.EncodeToString(b)
	parts := make([]string, 0, len(b))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, sep)
}

func TestSeparatedHex(t *testing.T) {
	inner := []byte("aws key AKIA" + fake(70, upperNum, 16) + " ok")
	key, _ := hex.DecodeString(fake(71, hexLower, 40))
	dumpColon := sepHex(inner, ":")
	dumpDash := strings.ToUpper(sepHex(inner, "-"))
	keyColon := sepHex(key, ":")
	mac := "00:1a:2b:3c:4d:5e"
	fpr := strings.ToUpper(sepHex(key, ":"))
	runDetect(t, []detectCase{
		{"hex dump of a key, colons", "dump: " + dumpColon, CategoryAWSAccessKey, dumpColon},
		{"hex dump of a key, dashes, upper case", "payload " + dumpDash + ".", CategoryAWSAccessKey, dumpDash},
		{"hex dump in json", `{"blob":"` + dumpColon + `"}`, CategoryAWSAccessKey, dumpColon},
		{"keyed, colons", "HMAC_SECRET=" + fpr, CategoryGenericAPIKey, fpr},
		{"keyed, dashes", "api_key = " + sepHex(key, "-"), CategoryGenericAPIKey, sepHex(key, "-")},
		// "key e3" used to read as the key, leaving the first pair out.
		{"whole run after a bare key word", "key " + keyColon, CategoryGenericAPIKey, keyColon},
		// A MAC is six bytes: the separated-hex join never reads it.
		{"not: mac", "link/ether " + mac + " brd ff:ff:ff:ff:ff:ff", "", mac},
		{"not: mac after key word", "key " + mac, "", mac},
		{"not: certificate fingerprint", "SHA256 Fingerprint=" + fpr, "", fpr},
		{"not: serial number", "Serial Number:\n    " + sepHex(key[:16], ":"), "", sepHex(key[:16], ":")},
		{"not: subject key identifier", "X509v3 Subject Key Identifier:\n    " + fpr, "", fpr},
		{"not: ssh fingerprint", "The key fingerprint is MD5:" + sepHex(key[:16], ":") + " user@host", "", sepHex(key[4:16], ":")},
		{"not: uuid", "id de305d54-75b4-431b-adbe-eb4b8f89b7bc", "", "de305d54-75b4-431b-adbe-eb4b8f89b7bc"},
		{"not: short dashed bytes", "bytes de-ad-be-ef-00-11", "", "de-ad-be-ef-00-11"},
	})
}

func TestFindSepHexRuns(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{strings.Repeat("ab:", 15) + "ab", 1},
		{strings.Repeat("ab:", 14) + "ab", 0},       // fifteen pairs: too short
		{"x" + strings.Repeat("ab:", 15) + "ab", 0}, // glued to a word
		{strings.Repeat("ab:", 15) + "abc", 0},      // a last group of three
		{strings.Repeat("ab:", 15) + "ab:", 1},      // a trailing separator ends the run
		{strings.Repeat("ab-", 15) + "ab:cd", 1},    // a separator change ends the run
		{strings.Repeat("abc:", 20), 0},             // groups of three
		{strings.Repeat("a:", 40), 0},               // groups of one
		{strings.Repeat("ab:", 15) + "ab " + strings.Repeat("cd-", 15) + "cd", 2},
	} {
		// At every offset: the pass samples the input, and must not miss a
		// run wherever it starts.
		for pad := 0; pad < 2*sepHexStride; pad++ {
			in := strings.Repeat(" ", pad) + tc.in + " tail"
			if runs := findSepHexRuns([]byte(in), nil); len(runs) != tc.want {
				t.Errorf("%q at %d: %d runs, want %d", tc.in, pad, len(runs), tc.want)
			}
		}
	}
}

func TestCardOverThreeOrMoreLines(t *testing.T) {
	s := newTest(t)
	visa := luhnComplete("414720000000000") // 16 digits
	amex := luhnComplete("37828224631000")  // 15 digits
	bad := visa[:15] + string('0'+(visa[15]-'0'+1)%10)
	for _, c := range []struct{ name, in, rest string }{
		{"fours, after a label", "card " + visa[:4] + "\n" + visa[4:8] + "\n" + visa[8:12] + "\n" + visa[12:] + " on file", visa[12:] + " on"},
		{"fours, json \\n", `{"note":"card ` + visa[:4] + `\n` + visa[4:8] + `\n` + visa[8:12] + `\n` + visa[12:] + ` on file"}`, visa[12:] + " on"},
		{"fours, \\r\\n and indented", "card " + visa[:4] + " " + visa[4:8] + "\r\n    " + visa[8:12] + "\r\n    " + visa[12:] + " on file", visa[12:] + " on"},
		{"amex 4-6-5 over three lines", "amex " + amex[:4] + "\n" + amex[4:10] + "\n" + amex[10:] + " ok", amex[10:] + " ok"},
		{"compact pieces over three lines", "card " + visa[:6] + "\n" + visa[6:11] + "\n" + visa[11:] + " ok", visa[11:] + " ok"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := s.Scan([]byte(c.in))
			if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryCreditCard }) {
				t.Fatalf("%q: findings %v, want a card", c.in, found([]byte(c.in), fs))
			}
			res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(c.in))
			if strings.Contains(res.Output, c.rest) {
				t.Fatalf("redacted output still holds the last line's piece: %q", res.Output)
			}
		})
	}
	// Numbers on consecutive lines that are no card stay.
	for _, in := range []string{
		"card " + bad[:4] + "\n" + bad[4:8] + "\n" + bad[8:12] + "\n" + bad[12:] + " on file", // Luhn fails
		"years 2019\n2020\n2021\n2022 shown",
		"qty 1200\n3400\n5600\n7800 units",
		"pins 0000\n1234\n9999\n4321",
		"v1.2.3\n1.2.4\n1.3.0",
		"ids 1001\n1002\n1003\n1004",
	} {
		if fs := s.Scan([]byte(in)); slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryCreditCard }) {
			t.Errorf("%q: findings %v, want no card", in, found([]byte(in), fs))
		}
	}
}

// utf16Bytes encodes s as UTF-16 in little- or big-endian order, with a
// byte-order mark when bom is set.
func utf16Bytes(s string, big, bom bool) []byte {
	var out []byte
	put := func(u uint16) {
		if big {
			out = append(out, byte(u>>8), byte(u))
		} else {
			out = append(out, byte(u), byte(u>>8))
		}
	}
	if bom {
		put(0xfeff)
	}
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			put(uint16(0xd800 + r>>10))
			put(uint16(0xdc00 + r&0x3ff))
			continue
		}
		put(uint16(r))
	}
	return out
}

func TestUTF16InsideEncodings(t *testing.T) {
	aws := "AKIA" + fake(80, upperNum, 16)
	cmd := "$env:AWS_ACCESS_KEY_ID='" + aws + "'; aws s3 ls"
	mail := "Kontakt: jürgen.müller@example.de 👍 bitte"
	le := base64.StdEncoding.EncodeToString(utf16Bytes(cmd, false, false))
	be := base64.StdEncoding.EncodeToString(utf16Bytes(cmd, true, false))
	bomLE := base64.StdEncoding.EncodeToString(utf16Bytes(mail, false, true))
	hexLE := hex.EncodeToString(utf16Bytes(cmd, false, false))
	hexBE := strings.ToUpper(hex.EncodeToString(utf16Bytes(cmd, true, true)))
	runDetect(t, []detectCase{
		{"powershell -EncodedCommand (UTF-16LE base64)", "powershell.exe -NoProfile -EncodedCommand " + le, CategoryAWSAccessKey, le},
		{"UTF-16BE base64", `{"blob":"` + be + `"}`, CategoryAWSAccessKey, be},
		{"UTF-16LE with a BOM, non-ASCII and a surrogate pair", "attachment: " + bomLE, CategoryEmail, bomLE},
		{"UTF-16LE hex", "payload " + hexLE, CategoryAWSAccessKey, hexLE},
		{"UTF-16BE hex with a BOM", "payload " + hexBE, CategoryAWSAccessKey, hexBE},
	})
	// Clean UTF-16 text, binary with zero bytes and ordinary hashes stay.
	s := newTest(t)
	zeros := make([]byte, 48)
	for i := range zeros {
		if i%2 == 0 {
			zeros[i] = byte(i * 37)
		}
	}
	for _, in := range []string{
		"powershell -enc " + base64.StdEncoding.EncodeToString(utf16Bytes("Get-ChildItem C:\\Users | Sort-Object Length", false, false)),
		"blob " + base64.StdEncoding.EncodeToString(zeros) + " end",
		"digest " + fake(81, hexLower, 64),
		"id " + base64.StdEncoding.EncodeToString([]byte(fake(82, alnum, 24))),
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
	for _, c := range []struct {
		in   []byte
		want byte
	}{
		{utf16Bytes("plain ascii text here", false, false), 'l'},
		{utf16Bytes("plain ascii text here", true, false), 'b'},
		{utf16Bytes("Привет, мир", false, true), 'l'},
		{[]byte("plain ascii text here"), 0},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0},
		{utf16Bytes("ab", false, false), 0}, // too short to tell
	} {
		if got := utf16Order(c.in); got != c.want {
			t.Errorf("utf16Order(% x) = %q, want %q", c.in, got, c.want)
		}
	}
}
