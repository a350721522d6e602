package sanitize

import (
	"bytes"
	"encoding/base64"
)

// provider is a hand-written matcher for one token format, run where the
// prefilter saw its literal. Each checks the exact prefix (case-sensitive),
// the body's alphabet and length, and the boundaries on both sides.
type provider struct {
	lit   string // lowercase literal for the prefilter
	match func(sc *scanner, p int)
}

// runLen counts bytes from p that satisfy ok, up to max.
func runLen(d []byte, p, max int, ok func(byte) bool) int {
	k := 0
	for p+k < len(d) && k < max && ok(d[p+k]) {
		k++
	}
	return k
}

func isB64URL(b byte) bool { return isAlnum(b) || b == '_' || b == '-' }

// tokenAt adds a finding for prefix+body at p when the text at p starts with
// prefix exactly, is at a word boundary, and the body has min..max bytes of ok.
func (sc *scanner) tokenAt(p int, prefix string, min, max int, ok func(byte) bool, cat Category, rule string) bool {
	d := sc.data
	if p+len(prefix) > len(d) || string(d[p:p+len(prefix)]) != prefix || wordBefore(d, p) {
		return false
	}
	b := p + len(prefix)
	k := runLen(d, b, max+1, ok)
	if k < min || k > max || wordAfter(d, b+k) {
		return false
	}
	if placeholder(d[b : b+k]) {
		return false
	}
	sc.add(p, b+k, cat, rule)
	return true
}

func isUpperDigit(b byte) bool { return isUpper(b) || isDigit(b) }

var providers = []provider{
	// AWS access key ids: AKIA/ASIA/ABIA/ACCA + 16.
	{"akia", func(sc *scanner, p int) { sc.awsKey(p, "AKIA") }},
	{"asia", func(sc *scanner, p int) { sc.awsKey(p, "ASIA") }},
	{"abia", func(sc *scanner, p int) { sc.awsKey(p, "ABIA") }},
	{"acca", func(sc *scanner, p int) { sc.awsKey(p, "ACCA") }},
	// GitHub.
	{"ghp_", func(sc *scanner, p int) { sc.tokenAt(p, "ghp_", 36, 36, isAlnum, CategoryGitHubToken, "github-pat") }},
	{"gho_", func(sc *scanner, p int) { sc.tokenAt(p, "gho_", 36, 36, isAlnum, CategoryGitHubToken, "github-oauth") }},
	{"ghs_", func(sc *scanner, p int) {
		sc.tokenAt(p, "ghs_", 36, 36, isAlnum, CategoryGitHubToken, "github-app-token")
	}},
	{"ghu_", func(sc *scanner, p int) {
		sc.tokenAt(p, "ghu_", 36, 36, isAlnum, CategoryGitHubToken, "github-user-token")
	}},
	{"ghr_", func(sc *scanner, p int) {
		sc.tokenAt(p, "ghr_", 36, 36, isAlnum, CategoryGitHubToken, "github-refresh-token")
	}},
	{"github_pat_", func(sc *scanner, p int) {
		sc.tokenAt(p, "github_pat_", 50, 255, isIdent, CategoryGitHubToken, "github-fine-grained-pat")
	}},
	// GitLab personal access tokens.
	{"glpat-", func(sc *scanner, p int) {
		sc.tokenAt(p, "glpat-", 20, 300, isB64URL, CategoryGitLabToken, "gitlab-pat")
	}},
	// Slack tokens and webhooks.
	{"xox", func(sc *scanner, p int) { sc.slackToken(p) }},
	{"hooks.slack.com/", func(sc *scanner, p int) { sc.slackWebhook(p) }},
	// Stripe secret and restricted keys (publishable pk_ keys are public).
	{"sk_live_", func(sc *scanner, p int) {
		sc.tokenAt(p, "sk_live_", 10, 247, isAlnum, CategoryStripeKey, "stripe-secret-key")
	}},
	{"rk_live_", func(sc *scanner, p int) {
		sc.tokenAt(p, "rk_live_", 10, 247, isAlnum, CategoryStripeKey, "stripe-restricted-key")
	}},
	{"sk_test_", func(sc *scanner, p int) {
		sc.tokenAt(p, "sk_test_", 10, 247, isAlnum, CategoryStripeKey, "stripe-secret-key")
	}},
	{"rk_test_", func(sc *scanner, p int) {
		sc.tokenAt(p, "rk_test_", 10, 247, isAlnum, CategoryStripeKey, "stripe-restricted-key")
	}},
	// OpenAI and Anthropic.
	{"sk-proj-", func(sc *scanner, p int) { sc.openAI(p, "sk-proj-") }},
	{"sk-svcacct-", func(sc *scanner, p int) { sc.openAI(p, "sk-svcacct-") }},
	{"sk-admin-", func(sc *scanner, p int) { sc.openAI(p, "sk-admin-") }},
	{"t3blbkfj", func(sc *scanner, p int) { sc.openAILegacy(p) }},
	{"sk-ant-", func(sc *scanner, p int) {
		sc.tokenAt(p, "sk-ant-", 40, 200, isB64URL, CategoryAnthropicKey, "anthropic-api-key")
	}},
	// Google API keys.
	{"aiza", func(sc *scanner, p int) {
		sc.tokenAt(p, "AIza", 35, 35, isB64URL, CategoryGoogleAPIKey, "google-api-key")
	}},
	// npm.
	{"npm_", func(sc *scanner, p int) { sc.tokenAt(p, "npm_", 36, 36, isAlnum, CategoryNPMToken, "npm-token") }},
	// Twilio API key SIDs: SK + 32 hex.
	{"sk", func(sc *scanner, p int) { sc.tokenAt(p, "SK", 32, 32, isHex, CategoryTwilioKey, "twilio-api-key") }},
	// SendGrid: SG.<22>.<43>.
	{"sg.", func(sc *scanner, p int) { sc.sendGrid(p) }},
	// JWTs, PEM private keys, passwords in URLs.
	{"eyj", func(sc *scanner, p int) { sc.jwt(p) }},
	{"-----begin", func(sc *scanner, p int) { sc.pem(p) }},
	{"://", func(sc *scanner, p int) { sc.urlPassword(p) }},
	// treaty's own identity.key: "TREATY-ED25519-PRIVATE-KEY <base64 seed>".
	{"treaty-ed25519-private-key", func(sc *scanner, p int) { sc.treatyKey(p) }},
}

// treatyKey finds treaty's identity key file format: the tag, blanks, and a
// base64 body of any length (a cut-off seed is still part of a key).
func (sc *scanner) treatyKey(p int) {
	const tag = "TREATY-ED25519-PRIVATE-KEY"
	d := sc.data
	if !hasPrefixFold(d, p, "treaty-ed25519-private-key") {
		return
	}
	b := p + len(tag)
	for b < len(d) && b-p < len(tag)+8 && (d[b] == ' ' || d[b] == '\t' || d[b] == ':' || d[b] == '=') {
		b++
	}
	k := runLen(d, b, 4096, isB64Std)
	if k < 8 || placeholder(d[b:b+k]) {
		return
	}
	sc.add(p, b+k, CategoryPrivateKey, "treaty-identity-key")
}

func (sc *scanner) awsKey(p int, prefix string) {
	d := sc.data
	if p+20 > len(d) || string(d[p:p+4]) != prefix || wordBefore(d, p) {
		return
	}
	k := runLen(d, p+4, 17, isUpperDigit)
	if k != 16 || wordAfter(d, p+20) {
		return
	}
	v := d[p : p+20]
	if bytes.HasSuffix(v, []byte("EXAMPLE")) || placeholder(v[4:]) {
		return
	}
	sc.add(p, p+20, CategoryAWSAccessKey, "aws-access-key")
}

func (sc *scanner) slackToken(p int) {
	d := sc.data
	if p+5 > len(d) || string(d[p:p+3]) != "xox" || wordBefore(d, p) {
		return
	}
	switch d[p+3] {
	case 'b', 'p', 'a', 'e', 's', 'r', 'o':
	default:
		return
	}
	if d[p+4] != '-' {
		return
	}
	k := runLen(d, p+5, 256, func(b byte) bool { return isAlnum(b) || b == '-' })
	for k > 0 && d[p+5+k-1] == '-' {
		k--
	}
	if k < 20 || wordAfter(d, p+5+k) {
		return
	}
	body := d[p+5 : p+5+k]
	if placeholder(body) || !bytes.ContainsAny(body, "0123456789") {
		return
	}
	sc.add(p, p+5+k, CategorySlackToken, "slack-token")
}

func (sc *scanner) slackWebhook(p int) {
	d := sc.data
	if string(d[p:p+16]) != "hooks.slack.com/" {
		return
	}
	st := p
	switch {
	case p >= 8 && string(d[p-8:p]) == "https://":
		st = p - 8
	case p >= 7 && string(d[p-7:p]) == "http://":
		st = p - 7
	}
	q := p + 16
	k := runLen(d, q, 300, func(b byte) bool { return isAlnum(b) || b == '/' || b == '_' || b == '-' || b == '+' })
	path := d[q : q+k]
	if !(bytes.HasPrefix(path, []byte("services/")) || bytes.HasPrefix(path, []byte("workflows/")) || bytes.HasPrefix(path, []byte("triggers/"))) {
		return
	}
	rest := path[bytes.IndexByte(path, '/')+1:]
	if len(rest) < 20 || placeholder(rest) {
		return
	}
	sc.add(st, q+k, CategorySlackWebhook, "slack-webhook")
}

func (sc *scanner) openAI(p int, prefix string) {
	d := sc.data
	if string(d[p:p+len(prefix)]) != prefix || wordBefore(d, p) {
		return
	}
	b := p + len(prefix)
	k := runLen(d, b, 400, isB64URL)
	body := d[b : b+k]
	if k < 40 || !bytes.Contains(body, []byte("T3BlbkFJ")) || placeholder(body) {
		return
	}
	sc.add(p, b+k, CategoryOpenAIKey, "openai-api-key")
}

// openAILegacy finds sk-<20>T3BlbkFJ<20> keys from their fixed middle.
func (sc *scanner) openAILegacy(p int) {
	d := sc.data
	if p+8 > len(d) || string(d[p:p+8]) != "T3BlbkFJ" {
		return
	}
	s := p
	for s > 0 && p-s < 80 && isAlnum(d[s-1]) {
		s--
	}
	if s < 3 || string(d[s-3:s]) != "sk-" || wordBefore(d, s-3) {
		return // project keys (sk-proj-...) are found from their prefix
	}
	k := runLen(d, p+8, 81, isAlnum)
	if p-s < 20 || k < 20 || wordAfter(d, p+8+k) {
		return
	}
	sc.add(s-3, p+8+k, CategoryOpenAIKey, "openai-api-key")
}

func (sc *scanner) sendGrid(p int) {
	d := sc.data
	if p+3 > len(d) || string(d[p:p+3]) != "SG." || wordBefore(d, p) {
		return
	}
	a := runLen(d, p+3, 40, isB64URL)
	if a < 16 || p+3+a >= len(d) || d[p+3+a] != '.' {
		return
	}
	q := p + 3 + a + 1
	b := runLen(d, q, 80, isB64URL)
	if b < 30 || wordAfter(d, q+b) || placeholder(d[q:q+b]) {
		return
	}
	sc.add(p, q+b, CategorySendGridKey, "sendgrid-api-key")
}

// jwt finds header.payload.signature where the header decodes to a JSON
// object naming an algorithm or a type.
func (sc *scanner) jwt(p int) {
	d := sc.data
	if p+3 > len(d) || string(d[p:p+3]) != "eyJ" || wordBefore(d, p) {
		return
	}
	h := runLen(d, p, 2048, isB64URL)
	if h < 12 || p+h >= len(d) || d[p+h] != '.' {
		return
	}
	q := p + h + 1
	pl := runLen(d, q, 1<<16, isB64URL)
	if pl < 8 {
		return
	}
	end := q + pl
	if end < len(d) && d[end] == '.' {
		end += 1 + runLen(d, end+1, 4096, isB64URL)
	}
	hdr := make([]byte, base64.RawURLEncoding.DecodedLen(h))
	nn, err := base64.RawURLEncoding.Decode(hdr, bytes.TrimRight(d[p:p+h], "="))
	if err != nil {
		return
	}
	hdr = hdr[:nn]
	if !validJSON(hdr, nil) || !(bytes.Contains(hdr, []byte(`"alg"`)) || bytes.Contains(hdr, []byte(`"typ"`))) {
		return
	}
	sc.add(p, end, CategoryJWT, "jwt")
}

// pem finds a private key block from its BEGIN line to its END line, or to
// the end of its body when the END line is missing (a truncated paste).
func (sc *scanner) pem(p int) {
	if p < sc.pemDone {
		return
	}
	end, valid := pemBlock(sc.data, p)
	if end > 0 {
		sc.pemDone = end
	}
	if valid {
		sc.add(p, end, CategoryPrivateKey, "private-key")
	}
}

// pemMinBody is the least key material a private key block must hold: an
// Ed25519 or X25519 PKCS#8 key is 64 base64 characters, so any real key of
// any algorithm has more; 16 still catches a block cut short.
const pemMinBody = 16

// pemBlock parses the PEM block at p. It returns the block's end (0 when
// there is no block) and whether it is a private key with key material:
// public keys and certificates never are, and neither is a block whose body
// was redacted ("...", "(key material removed)", <redacted>) unless real key
// material remains next to the marker. Without an END line the block runs to
// the end of its base64 body.
func pemBlock(d []byte, p int) (end int, valid bool) {
	if p+10 > len(d) || string(d[p:p+10]) != "-----BEGIN" {
		return 0, false
	}
	q := p + 10
	lim := min(q+64, len(d))
	hdrEnd := bytes.Index(d[q:lim], []byte("-----"))
	if hdrEnd < 0 {
		return 0, false
	}
	label := d[q : q+hdrEnd]
	private := containsFold(label, "private key") || containsFold(label, "private-key")
	body := q + hdrEnd + 5
	lim = min(body+64<<10, len(d))
	endAt := bytes.Index(d[body:lim], []byte("-----END"))
	if endAt < 0 {
		if !private {
			return 0, false
		}
		// Truncated: the body is the run of base64, whitespace, escapes and
		// armour headers ("Proc-Type: 4,ENCRYPTED") after the BEGIN line.
		k := body
		for k < lim && (isB64Std(d[k]) || isSpace(d[k]) || d[k] == '\\' || d[k] == ':' || d[k] == ',' || d[k] == '-' || d[k] == '_') {
			if d[k] == '-' && k+1 < lim && d[k+1] == '-' {
				break
			}
			k++
		}
		return k, pemMaterial(d[body:k]) >= pemMinBody
	}
	endAt += body
	tail := endAt + 8
	lim = min(tail+64, len(d))
	close := bytes.Index(d[tail:lim], []byte("-----"))
	if close < 0 {
		return 0, false
	}
	end = tail + close + 5
	if !private {
		return end, false
	}
	b := d[body:endAt]
	n := pemMaterial(b)
	if containsFold(b, "redacted") || containsFold(b, "removed") || bytes.Contains(b, []byte("...")) ||
		bytes.Contains(b, []byte("…")) || bytes.Contains(b, []byte("<")) || bytes.Contains(b, []byte("***")) {
		return end, n >= 40 // a marker, but a real piece of key next to it
	}
	return end, n >= pemMinBody
}

func isB64Std(c byte) bool { return isAlnum(c) || c == '+' || c == '/' || c == '=' }

// pemMaterial counts the bytes of b in base64 runs of 12 or more: key
// material, not words like "REDACTED" or the letters of escapes (`\n`).
// Linear: the escape state is carried along, not looked up backwards.
func pemMaterial(b []byte) int {
	n, run := 0, 0
	esc := false
	for _, c := range b {
		switch {
		case esc:
			esc = false
			if run >= 12 {
				n += run
			}
			run = 0
		case c == '\\':
			esc = true
			if run >= 12 {
				n += run
			}
			run = 0
		case isB64Std(c) || c == '-' || c == '_':
			run++
		default:
			if run >= 12 {
				n += run
			}
			run = 0
		}
	}
	if run >= 12 {
		n += run
	}
	return n
}

var dbSchemes = map[string]bool{
	"postgres": true, "postgresql": true, "mysql": true, "mariadb": true, "mongodb": true,
	"mongodb+srv": true, "redis": true, "rediss": true, "amqp": true, "amqps": true,
	"mssql": true, "sqlserver": true, "oracle": true, "clickhouse": true, "cockroachdb": true,
	"couchdb": true, "cassandra": true, "neo4j": true, "neo4j+s": true, "bolt": true,
	"memcached": true, "influxdb": true, "db2": true, "snowflake": true, "presto": true,
	"trino": true, "vertica": true, "timescaledb": true, "elasticsearch": true,
	"postgis": true, "sqlalchemy": true, "mysql+pymysql": true, "postgresql+psycopg2": true,
	"postgresql+asyncpg": true, "mysql+mysqldb": true, "ldap": true, "ldaps": true,
}

// urlPassword finds the password in scheme://user:password@host.
func (sc *scanner) urlPassword(p int) {
	d := sc.data
	s := p
	for s > 0 && p-s < 32 && (isAlnum(d[s-1]) || d[s-1] == '+' || d[s-1] == '.' || d[s-1] == '-') {
		s--
	}
	if s == p {
		return
	}
	q := p + 3
	// userinfo ends at the last '@' before the first '/', '?', '#', space or quote.
	at, colon := -1, -1
	for k := q; k < len(d) && k-q < 256; k++ {
		c := d[k]
		if c == '/' || c == '?' || c == '#' || isSpace(c) || c == '"' || c == '\'' || c == '`' || c == '\\' || c == '<' || c == '>' {
			break
		}
		if c == ':' && colon < 0 {
			colon = k
		}
		if c == '@' {
			at = k
		}
	}
	if at < 0 || colon < 0 || colon > at || at-colon < 2 {
		return
	}
	// An empty user (redis://:pw@host, postgres://:pw@host/db) still gives
	// a password; a host must follow it.
	if colon == q && (at+1 >= len(d) || !isAlnum(d[at+1])) {
		return
	}
	pw := d[colon+1 : at]
	if placeholder(pw) || bytes.EqualFold(pw, []byte("password")) || bytes.EqualFold(pw, []byte("pass")) {
		return
	}
	var lb [24]byte
	scheme := lb[:0]
	for _, c := range d[s:p] {
		if len(scheme) == len(lb) {
			break
		}
		scheme = append(scheme, lowerASCII(c))
	}
	if i := bytes.LastIndexByte(scheme, ':'); i >= 0 {
		scheme = scheme[i+1:] // jdbc:postgresql://
	}
	cat, rule := CategoryURLPassword, "url-password"
	if dbSchemes[string(scheme)] || bytes.HasPrefix(scheme, []byte("postgres")) || bytes.HasPrefix(scheme, []byte("mysql")) || bytes.HasPrefix(scheme, []byte("mongodb")) {
		cat, rule = CategoryDBURLPassword, "db-url-password"
	}
	sc.add(colon+1, at, cat, rule)
}
