package sanitize

import "bytes"

// keyKind is what a key name (a JSON key, a YAML or .env key, a CLI flag, a
// CSV column, "the password is") says about the value assigned to it.
type keyKind uint8

const (
	kindNone keyKind = iota
	kindPassword
	kindSecret
	kindAWSSecret
	kindSSN
	kindPhone
)

// keyLiterals trigger the key-context detector (matched case-insensitively
// anywhere, then the whole key name is read and classified).
var keyLiterals = []string{
	"pass", "pwd", "secret", "token", "key", "auth", "cred", "ssn", "social", "bearer",
	"phone", "mobile",
}

// Words in a key name that make its value something other than a secret:
// pagination and idempotency tokens, digests, public keys, LLM token counts,
// configuration about a secret rather than the secret.
var denyWords = map[string]bool{
	"public": true, "pub": true, "publishable": true, "page": true, "pagination": true,
	"next": true, "prev": true, "previous": true, "cursor": true, "continuation": true,
	"csrf": true, "xsrf": true, "idempotency": true, "checksum": true, "hash": true,
	"hashed": true, "digest": true, "sha": true, "sha1": true, "sha256": true, "sha512": true,
	"md5": true, "etag": true, "id": true, "ids": true, "count": true, "counts": true,
	"tokens": true, "max": true, "min": true, "limit": true, "usage": true, "type": true,
	"name": true, "length": true, "len": true, "size": true, "url": true, "uri": true,
	"endpoint": true, "file": true, "path": true, "dir": true, "expiry": true, "expires": true,
	"expiration": true, "ttl": true, "prefix": true, "format": true, "header": true,
	"cache": true, "partition": true, "sort": true, "primary": true, "foreign": true,
	"keyboard": true, "fingerprint": true, "policy": true, "reset": true, "hint": true,
	"field": true, "label": true, "mode": true, "method": true, "provider": true,
	"scheme": true, "strategy": true, "enabled": true, "required": true, "rotation": true,
	"version": true, "algorithm": true, "alg": true, "kid": true, "issuer": true,
	"audience": true, "scope": true, "scopes": true, "index": true, "store": true,
	"storage": true, "ref": true, "arn": true, "location": true, "salt": true,
	"object": true, "translation": true, "i18n": true, "dedup": true, "dedupe": true,
	"routing": true, "lookup": true, "row": true, "range": true, "group": true,
	"keyword": true, "keywords": true, "monkey": true, "turkey": true, "hotkey": true,
	"identifier": true, "bypass": true, "compass": true, "passenger": true, "passport": true, "passive": true,
	"passthrough": true, "strength": true, "rule": true, "rules": true, "changed": true,
	"created": true, "updated": true, "last": true, "author": true, "authored": true,
	"authority": true, "authorities": true, "estimate": true, "estimated": true,
	"budget": true, "spent": true, "remaining": true, "input": true, "output": true,
	"completion": true, "prompt": true, "total": true, "manager": true,
	"rotate": true, "generation": true, "length_min": true, "env": true, "mount": true,
}

var passwordWords = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "passphrase": true, "passcode": true,
	"pass": true, "pw": true, "passwort": true, "motdepasse": true, "contrasena": true,
}

// passwordQualifiers are deny words that, before a password word, only say
// whose password it is (REDIS_CACHE_PASSWORD, PRIMARY_DB_PASSWORD,
// SMTP_PROVIDER_PASSWORD, INPUT_PASSWORD); after it they still veto
// (password_file, password_url).
var passwordQualifiers = map[string]bool{
	"cache": true, "primary": true, "provider": true, "index": true, "store": true,
	"storage": true, "group": true, "manager": true, "input": true, "mount": true,
	"routing": true, "object": true, "location": true, "partition": true, "env": true,
	"name": true, "file": true, "path": true, "url": true, "uri": true, "endpoint": true,
}

// passwordAfter reports whether a word after word i of the key [0, nkey)
// names a password.
func (k *keyText) passwordAfter(i, nkey int) bool {
	for j := i + 1; j < nkey; j++ {
		w := k.word(j)
		if passwordWords[string(w)] || bytes.Contains(w, []byte("password")) || bytes.Contains(w, []byte("passwd")) {
			return true
		}
	}
	return false
}

var secretWords = map[string]bool{
	"secret": true, "secrets": true, "token": true, "apikey": true, "auth": true,
	"authorization": true, "bearer": true, "credential": true, "credentials": true,
	"creds": true, "accesskey": true, "privatekey": true, "secretkey": true,
	"clientsecret": true, "sas": true,
}

// keyText holds a key phrase split into lowercase words at non-alphanumerics
// and camelCase humps ("dbPassword" -> db password, "AWS_SECRET_ACCESS_KEY"
// -> aws secret access key). It is a value type so that it stays on the stack.
type keyText struct {
	buf [192]byte
	n   int
	w   [24][2]uint8
	nw  int
}

// add appends the words of phrase (ignored once the buffers are full).
func (k *keyText) add(phrase []byte) {
	start := k.n
	flush := func() {
		if k.n > start && k.nw < len(k.w) {
			k.w[k.nw] = [2]uint8{uint8(start), uint8(k.n)}
			k.nw++
		}
		start = k.n
	}
	for i, c := range phrase {
		if k.n >= len(k.buf) {
			break
		}
		if !isAlnum(c) {
			flush()
			continue
		}
		if isUpper(c) && i > 0 && (isLower(phrase[i-1]) || (i+1 < len(phrase) && isLower(phrase[i+1]) && isUpper(phrase[i-1]))) {
			flush()
		}
		k.buf[k.n] = lowerASCII(c)
		k.n++
	}
	flush()
}

func (k *keyText) word(i int) []byte { return k.buf[k.w[i][0]:k.w[i][1]] }

func isLower(b byte) bool { return byteClass[b]&cLower != 0 }

// classifyKey decides what a key says about its value. Words [0, nkey) are
// the key and the words after it, where a deny word vetoes; the rest are
// context words before the key, which only add meaning.
func classifyKey(k *keyText, nkey int) keyKind {
	for i := 0; i < nkey; i++ {
		if w := string(k.word(i)); denyWords[w] && !(passwordQualifiers[w] && k.passwordAfter(i, nkey)) {
			return kindNone
		}
	}
	has := func(word string) bool {
		for i := 0; i < k.nw; i++ {
			if string(k.word(i)) == word {
				return true
			}
		}
		return false
	}
	contains := func(sub string) bool {
		for i := 0; i < nkey; i++ {
			if bytes.Contains(k.word(i), []byte(sub)) {
				return true
			}
		}
		return false
	}
	if has("ssn") || (has("social") && has("security")) || contains("socialsecurity") {
		return kindSSN
	}
	if has("phone") || has("mobile") || has("telephone") || has("tel") || has("msisdn") || has("fax") {
		return kindPhone
	}
	if (has("aws") && has("secret")) || (has("secret") && has("access") && has("key")) ||
		contains("secretaccesskey") || contains("awssecret") {
		return kindAWSSecret
	}
	for i := 0; i < nkey; i++ {
		w := k.word(i)
		if passwordWords[string(w)] || bytes.Contains(w, []byte("password")) || bytes.Contains(w, []byte("passwd")) {
			return kindPassword
		}
	}
	for i := 0; i < nkey; i++ {
		w := k.word(i)
		if secretWords[string(w)] || bytes.Contains(w, []byte("token")) || bytes.Contains(w, []byte("secret")) ||
			bytes.Contains(w, []byte("apikey")) {
			return kindSecret
		}
		if string(w) == "key" && k.nw > 1 {
			// A qualified key: api key, stripe_key, signing key. "key" alone is a map key.
			return kindSecret
		}
	}
	return kindNone
}

func keyByte(b byte) bool { return isIdent(b) || b == '-' || b == '.' }

// keyHit runs at an occurrence of a key literal at p (length l).
func (sc *scanner) keyHit(p, l int) {
	d := sc.data
	n := len(d)
	ks := p
	for ks > 0 && p-ks < 64 && keyByte(d[ks-1]) && !escapedAt(d, ks-1) {
		ks--
	}
	ke := p + l
	for ke < n && ke-p < 64 && keyByte(d[ke]) {
		ke++
	}
	if ks == sc.lastKS && ke == sc.lastKE {
		return // another literal inside the same key
	}
	sc.lastKS, sc.lastKE = ks, ke
	flag := false
	for ks < ke && d[ks] == '-' {
		ks++
		flag = true
	}
	for ke > ks && (d[ke-1] == '.' || d[ke-1] == '-') {
		ke--
	}
	if ks >= ke {
		return
	}
	// Context words before the key on the same line: "secret access key",
	// "social security number", "Applicant SSN".
	ps := ks
	for w := 0; w < 3; w++ {
		if ps >= 2 && d[ps-1] == ' ' && isLetter(d[ps-2]) {
			j := ps - 1
			for j > 0 && ps-1-j < 16 && isAlnum(d[j-1]) {
				j--
			}
			if j > 0 && isIdent(d[j-1]) {
				break
			}
			ps = j
		} else {
			break
		}
	}
	// <password>value</password>
	if ks > 0 && d[ks-1] == '<' && ke < n && d[ke] == '>' {
		if e := bytes.Index(d[ke+1:min(n, ke+514)], []byte("</")); e > 0 && bytes.IndexByte(d[ke+1:ke+1+e], '\n') < 0 {
			var kt keyText
			kt.add(d[ks:ke])
			if kind := classifyKey(&kt, kt.nw); kind != kindNone {
				sc.classifyValue(kind, assignment{vs: ke + 1, ve: ke + 1 + e, op: '='})
			}
			return
		}
	}
	q := ke
	found := false
	for w := 0; w < 3; w++ {
		a, ok := parseAssign(d, q, flag || sc.isBearer(ks, ke))
		if ok {
			found = true
			var kt keyText
			kt.add(d[ks:q])
			nkey := kt.nw
			kt.add(d[ps:ks])
			kind := classifyKey(&kt, nkey)
			if kind != kindNone {
				sc.classifyValue(kind, a)
			}
			break
		}
		// "Access key ID:", "social security number:" — try after the next word.
		if q+1 < n && d[q] == ' ' && isLetter(d[q+1]) {
			r := q + 1
			for r < n && r-q < 16 && isIdent(d[r]) {
				r++
			}
			q = r
			continue
		}
		break
	}
	if !found && !flag {
		sc.bareAssign(ks, ke)
	}
	if tableCellAt(d, ks, ke) {
		sc.csvHeader(ks)
	}
}

// tableCellAt reports whether the key [ks, ke) is part of a cell of words
// ("API key", "Secret access key") between table delimiters, or between a
// line's edge and one.
func tableCellAt(d []byte, ks, ke int) bool {
	cell := func(b byte) bool { return isIdent(b) || b == ' ' || b == '"' || b == '-' || b == '.' || b == '\r' }
	b := ks
	for b > 0 && ks-b < 48 && cell(d[b-1]) {
		b--
	}
	a := ke
	for a < len(d) && a-ke < 48 && cell(d[a]) {
		a++
	}
	before := b == 0 || d[b-1] == '\n' || tableDelim(d[b-1])
	after := a == len(d) || d[a] == '\n' || tableDelim(d[a])
	return before && after && ((b > 0 && tableDelim(d[b-1])) || (a < len(d) && tableDelim(d[a])))
}

// bareAssign handles a key and its value separated by one space: a CLI's
// positional form (aws configure set aws_secret_access_key VALUE), where
// only an AWS secret's exact shape counts, and "key value" config lines
// (.netrc: password VALUE), where the key starts its line, the value ends it
// and holds letters and digits.
func (sc *scanner) bareAssign(ks, ke int) {
	d := sc.data
	a, ok := parseAssign(d, ke, true)
	if !ok || a.op != ' ' {
		return
	}
	var kt keyText
	kt.add(d[ks:ke])
	kind := classifyKey(&kt, kt.nw)
	v := d[a.vs:a.ve]
	switch kind {
	case kindAWSSecret:
		if len(v) == 40 && awsSecretShape(v) && !placeholder(v) {
			sc.add(a.vs, a.ve, CategoryAWSSecretKey, "aws-secret-key")
		}
	case kindPassword, kindSecret:
		if kind == kindPassword && netrcEntry(d, ks) {
			sc.classifyValue(kind, a) // machine HOST login USER password VALUE
			return
		}
		ls := ks
		for ls > 0 && (d[ls-1] == ' ' || d[ls-1] == '\t') {
			ls--
		}
		if ls > 0 && d[ls-1] != '\n' {
			return
		}
		if a.ve < len(d) && d[a.ve] != '\n' && d[a.ve] != '\r' {
			return
		}
		if hasDigitAndLetter(v) {
			sc.classifyValue(kind, a)
		}
	}
}

// netrcEntry reports whether the key at ks is a word of a .netrc entry
// written on one line: the line (at most 256 bytes before ks) starts with
// "machine " or "default " and names a login.
func netrcEntry(d []byte, ks int) bool {
	ls := max(0, ks-256)
	if nl := bytes.LastIndexByte(d[ls:ks], '\n'); nl >= 0 {
		ls += nl + 1
	}
	for ls < ks && (d[ls] == ' ' || d[ls] == '\t') {
		ls++
	}
	return (hasPrefixFold(d, ls, "machine ") || hasPrefixFold(d, ls, "default ")) && indexFold(d[ls:ks], " login ") >= 0
}

func hasDigitAndLetter(v []byte) bool {
	var digit, letter bool
	for _, c := range v {
		digit = digit || isDigit(c)
		letter = letter || isLetter(c)
	}
	return digit && letter
}

func (sc *scanner) isBearer(ks, ke int) bool {
	return ke-ks == 6 && hasPrefixFold(sc.data, ks, "bearer")
}

// assignment is a value found after a key.
type assignment struct {
	vs, ve int
	op     byte // '=' strong operator, 'w' a word ("is"), ' ' bare whitespace
}

// hasWordAt reports whether d[k:] starts with the lowercase word w followed by
// a space.
func hasWordAt(d []byte, k int, w string) bool {
	return hasPrefixFold(d, k, w) && k+len(w) < len(d) && d[k+len(w)] == ' '
}

// parseAssign reads `KEY" = "VALUE"`-like text after a key that ends at q.
// bare allows whitespace alone as the separator (CLI flags, Bearer).
func parseAssign(d []byte, q int, bare bool) (assignment, bool) {
	n := len(d)
	k := q
	for k < n && k-q < 4 {
		c := d[k]
		if c == '"' || c == '\'' || c == '`' || c == ']' || c == ')' {
			k++
			continue
		}
		if c == '\\' && k+1 < n && (d[k+1] == '"' || d[k+1] == '\\') {
			k++
			continue
		}
		break
	}
	sp := k
	for k < n && (d[k] == ' ' || d[k] == '\t') {
		k++
	}
	if k >= n {
		return assignment{}, false
	}
	var a assignment
	switch {
	case d[k] == '=' && !(k+1 < n && d[k+1] == '='):
		k++
		if k < n && d[k] == '>' {
			k++
		}
		a.op = '='
	case d[k] == ':' && !(k+1 < n && d[k+1] == ':'):
		k++
		if k < n && d[k] == '=' {
			k++
		}
		a.op = '='
	case d[k] == '-' && k+1 < n && d[k+1] == '>':
		k += 2
		a.op = '='
	case k > sp && (hasWordAt(d, k, "is") || hasWordAt(d, k, "was") || hasWordAt(d, k, "are")):
		for k < n && d[k] != ' ' {
			k++
		}
		a.op = 'w'
		if k+1 < n && d[k+1] == ':' {
			k++
		}
	case bare && k > sp && k == q+1:
		a.op = ' '
	default:
		return assignment{}, false
	}
	for k < n && (d[k] == ' ' || d[k] == '\t') {
		k++
	}
	if k >= n {
		return assignment{}, false
	}
	if a.op == '=' && (d[k] == '|' || d[k] == '>') {
		// A YAML block scalar (key: >-, key: |): the value is the next line.
		r := k + 1
		for r < n && r-k < 4 && (d[r] == '-' || d[r] == '+' || isDigit(d[r])) {
			r++
		}
		if r < n && d[r] == '\r' {
			r++
		}
		if r+1 < n && d[r] == '\n' && (d[r+1] == ' ' || d[r+1] == '\t') {
			r++
			for r < n && (d[r] == ' ' || d[r] == '\t') {
				r++
			}
			e := r
			for e < n && e-r <= 512 && !isSpace(d[e]) {
				e++
			}
			if e < n && !isSpace(d[e]) || e == r {
				return assignment{}, false
			}
			a.vs, a.ve = r, e
			return a, true
		}
	}
	// Opening quote: ", ', `, or an escaped quote \" (JSON inside a string).
	qlen := 0
	var qc byte
	switch c := d[k]; c {
	case '"', '\'', '`':
		qc, qlen = c, 1
	case '\\':
		m := 0
		for k+m < n && d[k+m] == '\\' {
			m++
		}
		if k+m < n && d[k+m] == '"' {
			qc, qlen = '"', m+1
		}
	}
	vs := k + qlen
	e := vs
	if qlen > 0 {
		for {
			if e >= n || e-vs > 512 || d[e] == '\n' {
				// No closing quote: read it as an unquoted value rather than
				// let a malformed line through.
				e = vs
				break
			}
			c := d[e]
			if c == qc {
				bs := 0
				for j := e - 1; j >= vs && d[j] == '\\'; j-- {
					bs++
				}
				if bs == qlen-1 {
					if e+1 < n && isAlnum(d[e+1]) {
						// "Orchid641! …"passwd": the quote opens the next
						// word, so this value was never closed.
						e = vs
						break
					}
					a.vs, a.ve = vs, e-bs
					return a, a.ve > a.vs
				}
				if bs < qlen-1 {
					e = vs // the string holding this one ended first
					break
				}
			}
			if qlen > 1 && c == 'n' && escapedAt(d, e) {
				e = vs // an escaped newline inside the enclosing string
				break
			}
			e++
		}
	}
	for e < n && e-vs <= 512 {
		c := d[e]
		if isSpace(c) || c == ',' || c == ';' || c == '"' || c == '\'' || c == '`' || c == ')' ||
			c == '}' || c == ']' || c == '\\' {
			break
		}
		if c == '<' || c == '>' {
			return assignment{}, false // glued to a <placeholder>
		}
		if c == '&' && queryParamAt(d, e+1) {
			break // password=x&next=y: the query string's next parameter
		}
		e++
	}
	a.vs, a.ve = vs, e
	return a, e > vs
}

// queryParamAt reports whether d[i:] starts a query parameter: a name of
// word characters and an =.
func queryParamAt(d []byte, i int) bool {
	k := i
	for k < len(d) && k-i < 64 && isIdent(d[k]) {
		k++
	}
	return k > i && k < len(d) && d[k] == '='
}

// classifyValue adds a finding for the value a when it fits what the key said.
func (sc *scanner) classifyValue(kind keyKind, a assignment) {
	d := sc.data
	vs, ve := a.vs, a.ve
	v := d[vs:ve]
	// Authorization: Bearer <token>, "auth": "Basic <b64>".
	for _, scheme := range []string{"bearer", "basic", "token", "digest"} {
		if !hasPrefixFold(v, 0, scheme) {
			continue
		}
		if len(v) > len(scheme)+1 && v[len(scheme)] == ' ' {
			vs += len(scheme) + 1 // quoted together
			v = d[vs:ve]
		} else if len(v) == len(scheme) && ve+1 < len(d) && d[ve] == ' ' && kind == kindSecret {
			r := ve + 1 // unquoted: the token is the next word
			e := r
			for e < len(d) && e-r < 512 && !isSpace(d[e]) && d[e] != '"' && d[e] != '\\' && d[e] != '\'' && d[e] != ',' {
				e++
			}
			vs, ve, v = r, e, d[r:e]
		}
		break
	}
	if a.op == ' ' && kind != kindSecret && kind != kindPassword && kind != kindSSN {
		return
	}
	switch kind {
	case kindSSN:
		var buf [16]byte
		digits := buf[:0]
		for _, c := range v {
			if isDigit(c) && len(digits) < 10 {
				digits = append(digits, c)
			} else if c != '-' && c != ' ' {
				return
			}
		}
		if len(v) <= 11 && validSSN(digits) {
			sc.add(vs, ve, CategoryUSSSN, "ssn-key")
		}
	case kindPhone:
		if len(v) >= 10 && len(v) <= 11 && allDigits(v) {
			sc.add(vs, ve, CategoryPhone, "phone-key")
		}
	case kindAWSSecret:
		if len(v) == 40 && awsSecretShape(v) && !placeholder(v) {
			sc.add(vs, ve, CategoryAWSSecretKey, "aws-secret-key")
			return
		}
		if acceptSecret(v) {
			sc.add(vs, ve, CategoryGenericAPIKey, "secret-key")
		}
	case kindPassword:
		if acceptPassword(v) {
			sc.add(vs, ve, CategoryPasswordAssignment, "password-key")
		}
	case kindSecret:
		if acceptSecret(v) {
			sc.add(vs, ve, CategoryGenericAPIKey, "secret-key")
		}
	}
}

func allDigits(v []byte) bool {
	for _, c := range v {
		if !isDigit(c) {
			return false
		}
	}
	return len(v) > 0
}

func awsSecretShape(v []byte) bool {
	lower, upper, digit := false, false, false
	for _, c := range v {
		switch {
		case isDigit(c):
			digit = true
		case isUpper(c):
			upper = true
		case isLower(c):
			lower = true
		case c == '/' || c == '+':
		default:
			return false
		}
	}
	return lower && upper && digit
}

// acceptPassword: a password value is anything short of whitespace that is
// not a placeholder, a reference to another variable, or a path.
func acceptPassword(v []byte) bool {
	if len(v) < 4 || len(v) > 200 || placeholder(v) {
		return false
	}
	if bytes.ContainsAny(v, " \t") {
		return false
	}
	if v[0] == '/' || bytes.HasPrefix(v, []byte("./")) || v[0] == '|' || v[0] == '>' {
		return false
	}
	// An environment variable name (DB_PASSWORD) names the secret, it is not one.
	upperIdent := true
	underscore := false
	for _, c := range v {
		if c == '_' {
			underscore = true
		} else if !isUpper(c) && !isDigit(c) {
			upperIdent = false
			break
		}
	}
	if upperIdent && underscore {
		return false
	}
	for _, p := range [][]byte{[]byte("vault:"), []byte("env:"), []byte("secretref"), []byte("arn:aws")} {
		if hasPrefixFold(v, 0, string(p)) {
			return false
		}
	}
	return true
}

// acceptSecret: a token assigned to a secret-named key must look random:
// long enough, no spaces, mixed characters.
func acceptSecret(v []byte) bool {
	if len(v) < 12 || len(v) > 512 || placeholder(v) {
		return false
	}
	var digit, alpha bool
	for _, c := range v {
		switch {
		case isDigit(c):
			digit = true
		case isLetter(c):
			alpha = true
		case c == '_' || c == '-' || c == '+' || c == '/' || c == '=' || c == '.' || c == '~' || c == ':':
		default:
			return false
		}
	}
	if !digit || !alpha {
		return false
	}
	return shannon(v) >= 3.0
}

// tableDelims are the column separators of tabular text: CSV, semicolon CSV
// (spreadsheet exports in comma-decimal locales), TSV and Markdown tables.
func tableDelim(b byte) bool { return b == ',' || b == ';' || b == '\t' || b == '|' }

// maxHeaderLine bounds the header line of a table, and so the work per key hit.
const maxHeaderLine = 1024

// csvHeader looks at the line around pos; when it is a table header (CSV,
// semicolon CSV, TSV or Markdown) naming a secret or PII column, the rows
// below it are checked column by column: the header, not the value, says what
// a value is. Each byte is looked at as a possible header at most once
// (sc.tableEnd), so the work stays linear however many keys a line holds.
func (sc *scanner) csvHeader(pos int) {
	d := sc.data
	if pos < sc.tableEnd {
		return
	}
	ls := pos
	for ls > 0 && d[ls-1] != '\n' {
		if pos-ls >= maxHeaderLine {
			sc.tableEnd = min(len(d), pos+maxHeaderLine)
			return
		}
		ls--
	}
	le := pos
	for le < len(d) && d[le] != '\n' {
		if le-ls >= maxHeaderLine {
			sc.tableEnd = le
			return
		}
		le++
	}
	sc.tableEnd = le
	line := bytes.TrimRight(d[ls:le], " \t\r")
	md := false
	if t := bytes.TrimLeft(line, " \t"); len(t) > 0 && t[0] == '|' {
		md = true
	}
	delim := byte(',')
	switch {
	case md:
		delim = '|'
	case bytes.IndexByte(line, '\t') >= 0:
		delim = '\t'
	case bytes.Count(line, []byte{';'}) > bytes.Count(line, []byte{','}):
		delim = ';'
	}
	var kinds [64]keyKind
	var cells [64][2]int
	nc := splitRow(line, delim, md, cells[:])
	if nc < 2 {
		return
	}
	any := false
	for c := 0; c < nc; c++ {
		f := line[cells[c][0]:cells[c][1]]
		if len(f) == 0 || len(f) > 48 {
			return
		}
		for _, b := range f {
			if !(isIdent(b) || b == ' ' || b == '-' || b == '.' || b == '/' || b == '#' || b >= 0x80) {
				return
			}
		}
		var kt keyText
		kt.add(f)
		kinds[c] = classifyKey(&kt, kt.nw)
		any = any || kinds[c] != kindNone
	}
	if !any {
		return
	}
	// Rows: one per line (a quoted CSV field may span lines); a blank line or a
	// row with another column count ends the table.
	p := le + 1
	for p < len(d) {
		re := p
		inq := false
		for re < len(d) && (inq || d[re] != '\n') {
			if d[re] == '"' && delim != '|' {
				inq = !inq
			}
			re++
		}
		row := bytes.TrimRight(d[p:re], " \t\r")
		if md && isMDSeparator(row) {
			p = re + 1
			sc.tableEnd = re
			continue
		}
		if len(row) == 0 || splitRow(row, delim, md, cells[:]) != nc {
			return
		}
		for c := 0; c < nc; c++ {
			if kinds[c] != kindNone && cells[c][1] > cells[c][0] {
				sc.classifyValue(kinds[c], assignment{vs: p + cells[c][0], ve: p + cells[c][1], op: '='})
			}
		}
		sc.tableEnd = re
		p = re + 1
	}
}

// isMDSeparator reports a Markdown table's |---|:--:| line.
func isMDSeparator(row []byte) bool {
	dash := false
	for _, b := range row {
		switch b {
		case '-':
			dash = true
		case '|', ':', ' ', '\t':
		default:
			return false
		}
	}
	return dash
}

// splitRow splits a table row into trimmed cells (offsets into row; a quoted
// CSV field's cell is inside its quotes) and returns their number, or -1 when
// there are more than len(cells).
func splitRow(row []byte, delim byte, md bool, cells [][2]int) int {
	p := 0
	e := len(row)
	if md {
		for p < e && (row[p] == ' ' || row[p] == '\t') {
			p++
		}
		if p < e && row[p] == '|' {
			p++
		}
		if e > p && row[e-1] == '|' {
			e--
		}
	}
	nc := 0
	for {
		if nc >= len(cells) {
			return -1
		}
		for p < e && (row[p] == ' ' || row[p] == '\t' && delim != '\t') {
			p++
		}
		var s, t int
		if p < e && row[p] == '"' && !md {
			s = p + 1
			t = s
			for t < e && !(row[t] == '"' && (t+1 >= e || row[t+1] != '"')) {
				if row[t] == '"' {
					t++
				}
				t++
			}
			p = t + 1
			for p < e && row[p] != delim {
				p++
			}
		} else {
			s = p
			for p < e && row[p] != delim {
				p++
			}
			t = p
			for t > s && (row[t-1] == ' ' || row[t-1] == '\r' || row[t-1] == '\t' && delim != '\t') {
				t--
			}
		}
		cells[nc] = [2]int{s, min(t, e)}
		nc++
		if p >= e {
			return nc
		}
		p++ // the delimiter
	}
}
