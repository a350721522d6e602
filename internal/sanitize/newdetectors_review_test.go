package sanitize

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf16"
)

// The five detectors added together (lower-case IBANs, cookie headers,
// separated hex, cards over lines, UTF-16 inside base64 and hex) stay linear
// on input built to make each of them work hardest: 1 MiB costs at most
// maxLinearRatio times 64 KiB of the same content.
func TestNewDetectorsLinear(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing: skipped with -short and under the race detector, which distorts it")
	}
	s := newTest(t)
	pairs := strings.Repeat("aa:", 40) + "aa"
	bomB64 := base64.StdEncoding.EncodeToString(u16le("password=Hq7x9k2Lm4Np8Rs1 "+strings.Repeat("x", 40), true))
	shapes := map[string]func(n int) string{
		// One run of separated hex as long as the input, after a key word.
		"one sephex run": func(n int) string { return "key " + strings.Repeat("aa:", n/3) + "aa" },
		// A key word every 128 bytes, each before a run.
		"sephex key every 128": func(n int) string { return strings.Repeat("key "+pairs+" ", n/(len(pairs)+5)) },
		// Runs that decode to text, so each is joined with no key word.
		"sephex text": func(n int) string { return strings.Repeat(strings.Repeat("41:", 20)+"41 ", n/61) },
		// Broken runs: one pair short of the minimum, then a glued digit.
		"sephex near misses": func(n int) string { return strings.Repeat(strings.Repeat("aa:", 15)+"aaa ", n/49) },
		// Cookie headers on one line, each shorter than the header bound.
		"cookie one line": func(n int) string {
			return strings.Repeat("Cookie: sessionid=Hq7x9k2Lm4Np8Rs1; a=b; ", n/42)
		},
		// One cookie header as long as the input with many short pairs.
		"cookie many pairs": func(n int) string { return "Cookie: " + strings.Repeat("s=b;", n/4) },
		"set-cookie lines":  func(n int) string { return strings.Repeat("Set-Cookie: csrftoken=x; Path=/\n", n/32) },
		// curl's -b over and over on one line.
		"curl -b": func(n int) string { return "curl" + strings.Repeat(" -b", n/3) },
		// Two letters and digits everywhere: every one is a lower-case IBAN
		// candidate read to its full length and failing mod 97.
		"iban candidates": func(n int) string { return strings.Repeat("de89 3704 0044 0532 0130 01 ", n/28) },
		"iban glued":      func(n int) string { return strings.Repeat("gb82west1234569876543x ", n/23) },
		// Digit groups on consecutive lines: every break is joined.
		"card lines": func(n int) string { return "card\n" + strings.Repeat("4111\n", n/5) },
		"amex lines": func(n int) string { return strings.Repeat("card\n3782\n822463\n10005\n", n/23) },
		// UTF-16 base64 with a byte-order mark, over and over.
		"utf16 base64": func(n int) string { return strings.Repeat("-enc "+bomB64+" ", n/(len(bomB64)+6)) },
		"bom only":     func(n int) string { return strings.Repeat("//4A//4A//4A//4A//4A//4A ", n/25) },
		// Binary with a zero high byte in one unit in eight: read as UTF-16
		// with no byte-order mark, decoded, and found not to be text.
		"utf16-like binary": func(n int) string {
			b := make([]byte, 0, 3*n/4)
			for i := 0; len(b) < cap(b); i++ {
				if i%8 == 0 {
					b = append(b, 'A', 0)
				} else {
					b = append(b, byte(i*7), byte(0x81+i%100))
				}
			}
			return "-enc " + base64.StdEncoding.EncodeToString(b)
		},
	}
	for name, build := range shapes {
		small, big := []byte(build(64<<10)), []byte(build(1<<20))
		run := func(in []byte) func() { return func() { s.DryRun(peerA, scrub, in) } }
		ts, tb := minTime(5, run(small)), minTime(3, run(big))
		ratio := float64(tb) / float64(ts)
		t.Logf("%-22s 64K %v  1M %v  ratio %.1f", name, ts, tb, ratio)
		if ratio > maxLinearRatio {
			t.Errorf("%s: 1 MiB took %.1fx the CPU time of 64 KiB, want <= %d", name, ratio, maxLinearRatio)
		}
	}
}

// FuzzSepHexRuns: the run finder never panics, and every run it reports is
// in range, after the previous one, and made of at least minSepHexPairs hex
// pairs joined by one separator.
func FuzzSepHexRuns(f *testing.F) {
	for _, s := range []string{"", ":", "aa:", "aa:bb", strings.Repeat("aa:", 16), strings.Repeat("aa:", 15) + "aa",
		":" + strings.Repeat("aa:", 16) + "aa:", strings.Repeat("a:", 40), strings.Repeat("aa-", 20) + "aa:bb",
		"x" + strings.Repeat("0F:", 47) + "0F", strings.Repeat("aa.", 20) + "aa"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		runs := findSepHexRuns(d, nil)
		prev := 0
		for _, r := range runs {
			if r.s < prev || r.e > len(d) || (r.e-r.s+1)%3 != 0 || (r.e-r.s+1)/3 < minSepHexPairs {
				t.Fatalf("bad run %+v after %d in %d bytes", r, prev, len(d))
			}
			sep := d[r.s+2]
			for k := r.s; k < r.e; k += 3 {
				if !isHex(d[k]) || !isHex(d[k+1]) || k+2 < r.e && d[k+2] != sep {
					t.Fatalf("run %+v is not separated hex: %q", r, d[r.s:r.e])
				}
			}
			prev = r.e
		}
	})
}

// FuzzUTF16Text: decoding never panics, and what it returns is text.
func FuzzUTF16Text(f *testing.F) {
	for _, s := range [][]byte{{}, {0xff, 0xfe}, {0xfe, 0xff}, {0xff, 0xfe, 0, 0, 0, 0, 0, 0},
		{0xff, 0xfe, 0x3d, 0xd8, 'a', 0, 'b', 0, 'c', 0}, {0xff, 0xfe, 0x00, 0xdc, 'a', 0, 'b', 0, 'c', 0, 'd'},
		u16le("password=x", false), u16le("password=x", true)[:9]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if out, ok := utf16Text(b); ok && !textLike(out) {
			t.Fatalf("utf16Text(%x) = %q, not text", b, out)
		}
	})
}

// u16le is s in UTF-16 little-endian, after a byte-order mark when bom.
func u16le(s string, bom bool) []byte {
	var b []byte
	if bom {
		b = append(b, 0xff, 0xfe)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

// hexPairs writes the hex of s in pairs joined by sep.
func hexPairs(s, sep string) string {
	h := hex.EncodeToString([]byte(s))
	var p []string
	for i := 0; i+1 < len(h); i += 2 {
		p = append(p, h[i:i+2])
	}
	return strings.Join(p, sep)
}

// Separated hex with dots (the way some tools and people print bytes) hides
// a key as well as colons do.
func TestSepHexDotSeparator(t *testing.T) {
	s := newTest(t)
	key := "sk_live_" + fake(3, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 24)
	for _, in := range []string{
		"key " + hexPairs(key, "."),
		"x " + hexPairs("password=Hq7x9k2Lm4Np8Rs1", "."),
		"x " + strings.ToUpper(hexPairs("password=Hq7x9k2Lm4Np8Rs1", ".")) + ".",
	} {
		d := []byte(in)
		v := strings.TrimSuffix(in[strings.IndexByte(in, ' ')+1:], ".")
		if fs := s.Scan(d); !overlaps(d, fs, v) || len(fs) != 1 || fs[0].End-fs[0].Start != len(v) {
			t.Errorf("%q: %q, want the whole dotted run", in, found(d, fs))
		}
	}
	// Dotted numbers that are not sixteen pairs stay.
	for _, in := range []string{"v1.22.33.44.55", "on 12.03.24 at 10.30", "oid 1.2.840.113549.1.1.11"} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: %q, want nothing", in, found([]byte(in), fs))
		}
	}
}

// Hostile edges for the new detectors: values cut at the end of the input,
// separators at the ends, a byte-order mark alone, surrogate halves, odd
// lengths, invalid UTF-8 around a match. None panics, and every finding is
// in range.
func TestNewDetectorsHostileEdges(t *testing.T) {
	s := newTest(t)
	run := strings.Repeat("aa:", 15) + "aa"
	b64 := base64.StdEncoding.EncodeToString
	var in []string
	for _, x := range []string{
		"Cookie", "cookie:", "Cookie:\"", "Cookie: \\", "Cookie: \\\"", "cookie\\", "--cookie", "--cookie ", "Cookie=",
		"Cookie: a=\"", "Cookie: =\"\"", "Cookie: a=\"\"", "Cookie: ;;;,,,=", "Cookie: sessionid=", "Set-Cookies:", "\"Cookie\\\":\\\"",
		"Cookie: sessionid=\"Hq7x9k2Lm4Np8Rs1", "Cookie: sessionid=Hq7x9k2Lm4Np8Rs1\\", "Cookie: " + strings.Repeat("x", 5000) + "; sid=Hq7x9k2Lm4Np8Rs1",
		run, ":" + run, run + ":", run + ":a", "-" + run + "-", run + "\xff", "\xc3" + run, strings.Replace(run, ":", "-", 1),
		"key " + run + ".", "key " + strings.ReplaceAll(run, ":", "."),
		"de8", "de89", "de89 ", "de89 3704 0044 0532 0130 0", "DE89\u00a0", "gb82west", "xx de89370400440532013000\xff",
		"-enc " + b64([]byte{0xff, 0xfe}), "-enc " + b64([]byte{0xfe, 0xff, 0, 'a', 0}), "fffe", "fffe00", "FFFE" + strings.Repeat("00D8", 16),
		"-enc " + b64(append([]byte{0xff, 0xfe}, []byte(strings.Repeat("\x3d\xd8", 20))...)),
		"-enc " + b64(append([]byte{0xff, 0xfe}, []byte(strings.Repeat("\x00\xdc", 20))...)),
		"-enc " + b64(u16le("password=Hq7x9k2Lm4Np8Rs1x", true)[:21]),
		"4111\n", "\n1111", "card\n4111\n1111\n1111\n111", "card 4111\n1111\n1111\n1111\n\xff", "\r\n\r\n1\n2\n3\n4",
	} {
		in = append(in, x, " "+x+" ", "\"x\":\""+x+"\"")
	}
	pols := []Policy{{Secrets: ActionPseudonymize, PII: ActionPseudonymize}, {Secrets: ActionRedact, PII: ActionRedact}, DefaultPolicy()}
	for _, x := range in {
		d := []byte(x)
		for _, f := range s.Scan(d) {
			if f.Start < 0 || f.End > len(d) || f.Start >= f.End {
				t.Errorf("%q: finding out of range %+v", x, f)
			}
		}
		for _, p := range pols {
			if c, err := s.Apply(peerA, p, d); err == nil {
				s.Restore(peerA, c.Bytes())
			}
		}
	}
}

// A label glued to a run by the run's own separator (secret:70:61:...), or a
// stray group of one or three digits at either end (0:..., ...:0), used to
// make findSepHexRuns drop the whole run, so the key inside was never joined.
func TestSepHexRunWithLabelOrStrayGroup(t *testing.T) {
	s := newTest(t)
	key := "sk_live_" + fake(5, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 24)
	for _, sep := range []string{":", "-"} {
		run := hexPairs(key, sep)
		for _, in := range []string{
			"secret" + sep + run,
			"password" + sep + run,
			"key 0" + sep + run,
			"key " + run + sep + "0",
			"key abc" + sep + run + sep + "abc",
		} {
			d := []byte(in)
			if fs := s.Scan(d); !overlaps(d, fs, run) {
				t.Errorf("%q: %q, want the run found", in, found(d, fs))
			}
		}
	}
}

// A group of three before a run (abc:aa:aa:...) used to be read as the run's
// first pair when a look landed on the separator after it, and the run was
// then dropped as glued to a word: at one offset in 32 a key went unjoined.
func TestSepHexRunAfterStrayGroupEveryOffset(t *testing.T) {
	run := strings.Repeat("aa:", 15) + "aa"
	for _, pre := range []string{"abc:", "abcd:", "0:", "x:"} {
		for off := range 64 {
			in := []byte(strings.Repeat(" ", off) + pre + run + " ")
			runs := findSepHexRuns(in, nil)
			want := off + len(pre)
			if len(runs) != 1 || runs[0].s != want || runs[0].e != want+len(run) {
				t.Errorf("%q at offset %d: runs %+v, want one at [%d, %d)", pre, off, runs, want, want+len(run))
			}
		}
	}
}

// A session cookie after 4 KiB of ordinary cookies in the same header used
// to be past the header's read bound, so padding the header hid it.
func TestCookieAfterLongHeader(t *testing.T) {
	s := newTest(t)
	v := "Hq7x9k2Lm4Np8Rs1"
	for _, in := range []string{
		"Cookie: " + strings.Repeat("theme=dark; ", 400) + "sessionid=" + v,
		`{"headers":{"Cookie":"` + strings.Repeat("lang=en; ", 600) + "csrftoken=" + v + `"}}`,
		"Set-Cookie: sid=" + v + "; Path=/; Comment=" + strings.Repeat("x", 5000) + "\nCookie: auth_token=" + v + "x",
	} {
		d := []byte(in)
		if fs := s.Scan(d); !hasFinding(d, fs, CategoryGenericAPIKey, v) {
			t.Errorf("%.40q...: %q, want %q found", in, found(d, fs), v)
		}
	}
}

// Ordinary values under session-like cookie names (a time, a count, a path,
// a locale, words joined) and consent cookies of fields are not secrets;
// session tokens beside them still are.
func TestCookieOrdinaryValuesStay(t *testing.T) {
	s := newTest(t)
	for _, in := range []string{
		"Cookie: last_login=1735689600; session_count=12345678",
		"Cookie: last_login=2025-01-01T10:00:00Z",
		"Cookie: _session_started_at=2025-12-06T21:00:00.000Z",
		"Cookie: auth_method=password_and_otp",
		"Cookie: login_redirect=/dashboard/settings/profile",
		"Cookie: session_lang=en_US.UTF-8",
		"Cookie: token_type=Bearer; auth_provider=google-oauth2",
		"Cookie: sessionTheme=dark-mode-v2; session_region=eu-west-1",
		"Cookie: OptanonConsent=isGpcEnabled=0&datestamp=Mon+Dec+01+2025+10%3A00%3A00+GMT%2B0100&version=202401.1.0",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: %q, want nothing", in, found([]byte(in), fs))
		}
	}
	for _, v := range []string{"Hq7x9k2Lm4Np8Rs1", "a1b2c3d4", "8A2B9C0D1E2F3A4B5C6D7E8F9A0B1C2D", "1234567890123456789", "s%3AHq7x9k2Lm4.Np8Rs1Zz"} {
		in := []byte("Cookie: theme=dark; sessionid=" + v + "; lang=en")
		if fs := s.Scan(in); !hasFinding(in, fs, CategoryGenericAPIKey, v) {
			t.Errorf("%q: %q, want %q found", in, found(in, fs), v)
		}
	}
}

// UTF-16 text that opens with a comment in another script (a Chinese or
// Russian note at the top of a PowerShell script) has fewer than three in
// four zero high bytes in its first 64 bytes; it was not read as UTF-16, so
// a password after the comment went out encoded.
func TestUTF16AfterNonLatinComment(t *testing.T) {
	s := newTest(t)
	v := "Hq7x9k2Lm4Np8Rs1"
	for _, comment := range []string{"# 连接数据库的脚本，请勿修改\n", "# Скрипт подключения к базе\n"} {
		le := u16le(comment+"$password = '"+v+"'\n", false)
		be := make([]byte, len(le))
		for i := 0; i+1 < len(le); i += 2 {
			be[i], be[i+1] = le[i+1], le[i]
		}
		for _, in := range []string{
			"powershell -enc " + base64.StdEncoding.EncodeToString(le),
			"x " + strings.ToUpper(hex.EncodeToString(le)),
			"x " + hex.EncodeToString(be),
		} {
			if fs := s.Scan([]byte(in)); len(fs) == 0 {
				t.Errorf("%.60q...: nothing found, want the encoded password", in)
			}
		}
	}
	// Binary with zero bytes in both halves of its units stays undecoded.
	bin := make([]byte, 96)
	for i := range bin {
		bin[i] = byte(i * 37 % 7)
	}
	if text, ok := utf16Text(bin); ok {
		t.Errorf("binary decoded as UTF-16: %q", text)
	}
}

// curl's -b is --cookie's short form, and an unquoted --cookie argument ends
// at the next space: both let a session cookie through before.
func TestCookieCurlShortFlag(t *testing.T) {
	s := newTest(t)
	v := "Hq7x9k2Lm4Np8Rs1"
	for _, in := range []string{
		"curl --cookie sessionid=" + v + " https://x.example",
		"curl -b sessionid=" + v + " https://x.example",
		"curl -sS -b 'theme=dark; sessionid=" + v + "' https://x.example",
		"$ CURL -L -b \"sessionid=" + v + "\" x",
	} {
		d := []byte(in)
		if fs := s.Scan(d); !hasFinding(d, fs, CategoryGenericAPIKey, v) {
			t.Errorf("%q: %q, want %q found", in, found(d, fs), v)
		}
	}
	for _, in := range []string{
		"git checkout -b feature/session-token-refresh",
		"curl https://x.example\ngit checkout -b sessionid=" + v[:7] + "x",
		"curl -b cookies.txt https://x.example",
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: %q, want nothing", in, found([]byte(in), fs))
		}
	}
}
