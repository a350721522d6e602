package sanitize

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// Issue 10, defect 1: every PEM private key block is blocked by the default
// policy, whatever its algorithm, length, escaping or truncation.
func TestPEMPrivateKeysOfAnyLengthBlock(t *testing.T) {
	s := newTest(t)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	xKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
	xDER, err := x509.MarshalPKCS8PrivateKey(xKey)
	if err != nil {
		t.Fatal(err)
	}
	ed := pemOf(t, "PRIVATE KEY", edDER)
	body := strings.Split(ed, "\n")[1]
	cases := map[string]string{
		"ed25519 pkcs8":        ed,
		"x25519 pkcs8":         pemOf(t, "PRIVATE KEY", xDER),
		"ed25519 in json":      `{"file":"` + strings.ReplaceAll(ed, "\n", `\n`) + `"}`,
		"ed25519 crlf":         strings.ReplaceAll(ed, "\n", "\r\n"),
		"encrypted":            pemOf(t, "ENCRYPTED PRIVATE KEY", edDER),
		"openssh short":        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
		"ec":                   pemOf(t, "EC PRIVATE KEY", edDER),
		"rsa":                  pemOf(t, "RSA PRIVATE KEY", edDER),
		"dsa":                  pemOf(t, "DSA PRIVATE KEY", edDER),
		"pgp":                  "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF+abcdEFGH1234ijklMNOP\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----\n",
		"no end line":          "here: -----BEGIN PRIVATE KEY-----\n" + body + "\nthanks",
		"header then base64":   "-----BEGIN PRIVATE KEY-----" + body[:20],
		"truncated with dots":  "-----BEGIN PRIVATE KEY-----\n" + body + "...\n-----END PRIVATE KEY-----",
		"lowercase label":      "-----BEGIN private key-----\n" + body + "\n-----END private key-----",
		"proc-type, truncated": "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123456789ABCDEF\n\n" + body,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			res := s.DryRun(peerA, DefaultPolicy(), []byte(in))
			if res.Action != ActionBlock {
				t.Fatalf("action %s, want block; findings %v", res.Action, found([]byte(in), res.Findings))
			}
			_, err := s.Apply(peerA, DefaultPolicy(), []byte(in))
			var b *BlockedError
			if !errors.As(err, &b) {
				t.Fatalf("Apply err %v, want *BlockedError", err)
			}
		})
	}
	// Still not secrets: public keys, certificates, redacted bodies.
	for _, in := range []string{
		pemOf(t, "PUBLIC KEY", edDER),
		pemOf(t, "CERTIFICATE", edDER),
		"-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
		"-----BEGIN RSA PRIVATE KEY-----\n[REDACTED]\n-----END RSA PRIVATE KEY-----\n",
		"-----BEGIN OPENSSH PRIVATE KEY-----\n(key material removed)\n-----END OPENSSH PRIVATE KEY-----\n",
	} {
		if res := s.DryRun(peerA, DefaultPolicy(), []byte(in)); res.Action != ActionPass {
			t.Errorf("%q: action %s, want pass", in, res.Action)
		}
	}
}

// treaty's own identity.key format is a private key.
func TestTreatyKeyFileBlocks(t *testing.T) {
	s := newTest(t)
	seed := make([]byte, 32)
	rand.Read(seed)
	file := "TREATY-ED25519-PRIVATE-KEY " + base64.StdEncoding.EncodeToString(seed) + "\n"
	for _, in := range []string{file, `{"content":"` + strings.TrimSpace(file) + `\n"}`, "cat identity.key\n" + file[:40]} {
		if res := s.DryRun(peerA, DefaultPolicy(), []byte(in)); res.Action != ActionBlock {
			t.Errorf("%q: action %s, want block", in, res.Action)
		}
	}
	if res := s.DryRun(peerA, DefaultPolicy(), []byte("the file starts with TREATY-ED25519-PRIVATE-KEY and a space")); res.Action != ActionPass {
		t.Errorf("the tag alone: %s, want pass", res.Action)
	}
}

// The node's own secrets block by exact value in every common encoding,
// even under a policy that allows secrets.
func TestCanariesBlockInEveryEncoding(t *testing.T) {
	seed := make([]byte, 32)
	rand.Read(seed)
	canary := []byte("correct-horse-battery-staple-7781")
	s, err := New(Config{PseudonymKey: testKey, Canaries: [][]byte{seed, canary}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	allow := Policy{Secrets: ActionAllow, PII: ActionAllow, Categories: map[Category]Action{CategoryCanary: ActionAllow}}
	for _, v := range [][]byte{seed, canary} {
		forms := map[string]string{
			"raw":          string(v),
			"hex":          hex.EncodeToString(v),
			"HEX":          strings.ToUpper(hex.EncodeToString(v)),
			"base64":       base64.StdEncoding.EncodeToString(v),
			"base64 raw":   base64.RawStdEncoding.EncodeToString(v),
			"base64url":    base64.URLEncoding.EncodeToString(v),
			"base64 off 1": base64.StdEncoding.EncodeToString(append([]byte{7}, v...)),
			"base64 off 2": base64.StdEncoding.EncodeToString(append([]byte{7, 9}, v...)),
			"in longer":    base64.StdEncoding.EncodeToString(append(append([]byte("prefix:"), v...), []byte(":suffix")...)),
			"url":          "https://x.example/?q=" + url.QueryEscape(string(v)),
			"json":         `{"v":"` + string(escapeJSON(v)) + `"}`,
		}
		for name, in := range forms {
			if string(v) == string(canary) || name != "raw" { // raw seed bytes are binary
				res := s.DryRun(peerA, allow, []byte("see "+in+" ok"))
				if res.Action != ActionBlock {
					t.Errorf("%s of %x: action %s, want block", name, v[:4], res.Action)
				}
			}
		}
	}
	if _, err := New(Config{PseudonymKey: testKey, Canaries: [][]byte{[]byte("short")}}); err == nil || !strings.Contains(err.Error(), "Canaries[0]") {
		t.Fatalf("short canary: %v, want an error naming Canaries[0]", err)
	}
}

// A value pseudonymized for one peer is pseudonymized for another too, even
// in a form the detectors do not decode.
func TestVaultOriginalsNotSentInClearToOtherPeers(t *testing.T) {
	s := newTest(t)
	email := "hannah.schmidt@northwind.dev"
	if _, err := s.Apply(peerA, scrub, []byte("write to "+email)); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		"hex " + hex.EncodeToString([]byte(email)),
		"b64 " + base64.RawURLEncoding.EncodeToString([]byte(email)),
		"q=" + url.QueryEscape(email) + "&x=1",
	} {
		c, err := s.Apply(peerB, scrub, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if c.Report().Strongest != ActionPseudonymize || strings.Contains(string(c.Bytes()), in[4:]) {
			t.Errorf("%q sent to peer B as %q", in, c.Bytes())
		}
	}
}

// A wrap anywhere inside a canary, next to a dash or leaving a piece too
// short to look like a value, or letters of another script that look like
// its own, still block it; its pieces apart, and ordinary Cyrillic, do not.
func TestCanarySplitOrSpelledWithLookalikesBlocks(t *testing.T) {
	canary := []byte("acme-prod-7f3e9a2b-canary")
	s, err := New(Config{PseudonymKey: testKey, Canaries: [][]byte{canary}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	allow := Policy{Secrets: ActionAllow, PII: ActionAllow, Categories: map[Category]Action{CategoryCanary: ActionAllow}}
	b64 := base64.StdEncoding.EncodeToString(canary)
	for _, c := range []struct{ in, span string }{
		{"x acme-prod-\n7f3e9a2b-canary y", "acme-prod-\n7f3e9a2b-canary"},
		{"x acme-prod\n-7f3e9a2b-canary y", "acme-prod\n-7f3e9a2b-canary"},
		{`{"a":"acme-prod-7f3e9a2b-\ncanary"}`, `acme-prod-7f3e9a2b-\ncanary`},
		{`{"a":"ac\r\nme-prod-7f3e9a2b-ca\nnary"}`, `ac\r\nme-prod-7f3e9a2b-ca\nnary`},
		{"x acme\r\n    -prod-7f3e9a2b-canary y", "acme\r\n    -prod-7f3e9a2b-canary"},
		{"k: " + b64[:10] + "\n" + b64[10:], b64[:10] + "\n" + b64[10:]},
		{"x аcmе-prоd-7f3e9a2b-canary y", "аcmе-prоd-7f3e9a2b-canary"},     // Cyrillic а, е, о
		{"x ACME-ΡROD-7F3E9A2B-CΑNARY y", "ACME-ΡROD-7F3E9A2B-CΑNARY"},     // Greek Ρ, Α
		{"x ᴀcme-prod-7f3e9a2b-\nсanary y", "ᴀcme-prod-7f3e9a2b-\nсanary"}, // small capital, a break, Cyrillic с
	} {
		fs := s.Scan([]byte(c.in))
		if !slices.ContainsFunc(fs, func(f Finding) bool {
			return f.Category == CategoryCanary && c.in[f.Start:f.End] == c.span
		}) {
			t.Errorf("%q: findings %v, want canary %q", c.in, found([]byte(c.in), fs), c.span)
		}
		if res := s.DryRun(peerA, allow, []byte(c.in)); res.Action != ActionBlock {
			t.Errorf("%q: action %s, want block", c.in, res.Action)
		}
	}
	for _, in := range []string{
		"acme-prod-\nnot-7f3e9a2b-canary",
		"acme-prod-7f3e\n9a2b canary",
		"acme-prod-7f3e \n9a2b-canary", // a space before the break is text
		"Привет, это обычный текст: прод 7f3e9a2b.",
	} {
		if fs := s.Scan([]byte(in)); slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == CategoryCanary }) {
			t.Errorf("%q: findings %v, want no canary", in, found([]byte(in), fs))
		}
	}
}

// FuzzCanarySplit: a canary inserted anywhere in any data, with line breaks
// of any kind at any of its inner positions and lookalikes for any of its
// letters, is reported whole.
func FuzzCanarySplit(f *testing.F) {
	canary := "acme-prod-7f3e9a2b-canary"
	s, err := New(Config{PseudonymKey: testKey, Canaries: [][]byte{[]byte(canary)}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Add([]byte("see  ok"), uint16(4), uint64(1<<9), uint64(0), uint8(0))
	f.Add([]byte(`{"a":""}`), uint16(6), uint64(0xffffff), uint64(0x15), uint8(2))
	f.Add([]byte("\\"), uint16(1), uint64(5), uint64(0xffffffff), uint8(4))
	breaks := []string{"\n", "\r\n", `\n`, "\n  \t", `\r\n `}
	look := map[byte]string{'a': "а", 'c': "с", 'm': "м", 'e': "е", 'p': "р", 'o': "о", 'd': "ԁ", 'b': "в", 'n': "ո", 'y': "у", 'r': "ʀ", 'f': "ꜰ"}
	f.Fuzz(func(t *testing.T, d []byte, at uint16, cuts, subs uint64, kind uint8) {
		var in []byte
		k := int(at) % (len(d) + 1)
		in = append(in, d[:k]...)
		start := len(in)
		for i := range len(canary) {
			if i > 0 && cuts>>(i%64)&1 == 1 {
				in = append(in, breaks[int(kind)%len(breaks)]...)
			}
			if l, ok := look[canary[i]]; ok && subs>>(i%64)&1 == 1 {
				in = append(in, l...)
			} else {
				in = append(in, canary[i])
			}
		}
		end := len(in)
		in = append(in, d[k:]...)
		fs := s.Scan(in)
		if !slices.ContainsFunc(fs, func(f Finding) bool {
			return f.Category == CategoryCanary && f.Start <= start && end <= f.End
		}) {
			t.Fatalf("%q: findings %v, want a canary over [%d,%d)", in, found(in, fs), start, end)
		}
	})
}
