package wire

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// This file builds RFC 9421 signature bases (§2.5) from a message view. It is
// the only code that turns HTTP into signed bytes, for both signing and
// verifying, so the two sides cannot drift apart.

// Caps on peer-supplied signature headers, checked before any parsing.
const (
	maxSignatureInputBytes = 2048
	maxSignatureBytes      = 512
	maxDigestHeaderBytes   = 512
	maxComponents          = 16
)

// message is the view of one HTTP message the signature base reads.
type message struct {
	response   bool
	method     string // request only
	authority  string // request only, as received (normalized by the base)
	requestURI string // request only: path and query, as sent on the wire
	scheme     string // request only; "" if unknown
	status     int    // response only
	header     http.Header
	req        *message // the request, for ";req" components of a response
}

// requestMessage is the view of an outgoing (client) or incoming (server) request.
// Both sides use the request-target as transmitted: RequestURI on the server,
// URL.RequestURI() on the client, which is what Go writes as :path.
func requestMessage(r *http.Request) *message {
	m := &message{method: r.Method, header: r.Header}
	if m.method == "" {
		m.method = http.MethodGet
	}
	m.authority = r.Host
	if m.authority == "" && r.URL != nil {
		m.authority = r.URL.Host
	}
	m.requestURI = r.RequestURI
	if m.requestURI == "" && r.URL != nil {
		m.requestURI = r.URL.RequestURI()
	}
	switch {
	case r.TLS != nil:
		m.scheme = "https"
	case r.URL != nil && r.URL.Scheme != "":
		m.scheme = strings.ToLower(r.URL.Scheme)
	}
	return m
}

// component is one parsed component identifier (RFC 9421 §2).
type component struct {
	id   string // canonical serialization, e.g. `"signature";req;key="treaty"`
	name string
	hkey string // http.CanonicalHeaderKey(name), for field components
	req  bool
	key  string
	hasK bool
}

// parseComponent checks one inner-list item of Signature-Input. Only the
// parameters treaty implements are accepted (req, key); sf, bs, tr and name
// are refused rather than silently ignored.
func parseComponent(it httpsfv.Item) (component, error) {
	name, ok := it.Value.(string)
	if !ok {
		return component{}, fail(ReasonMalformed, "component identifier is not a string")
	}
	if name == "" || len(name) > 64 {
		return component{}, fail(ReasonMalformed, "component name length %d", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || (c == '@' && i == 0)) {
			return component{}, fail(ReasonMalformed, "component name %s is not a lowercase token", quote(name))
		}
	}
	c := component{name: name, hkey: headerKey(name)}
	if it.Params != nil {
		for _, p := range it.Params.Names() {
			v, _ := it.Params.Get(p)
			switch p {
			case "req":
				if b, ok := v.(bool); !ok || !b {
					return component{}, fail(ReasonMalformed, "component %s: req must be true", quote(name))
				}
				c.req = true
			case "key":
				s, ok := v.(string)
				if !ok || s == "" {
					return component{}, fail(ReasonMalformed, "component %s: key must be a non-empty string", quote(name))
				}
				if name[0] == '@' {
					return component{}, fail(ReasonMalformed, "component %s: key applies to fields only", quote(name))
				}
				c.key, c.hasK = s, true
			default:
				return component{}, fail(ReasonMalformed, "component %s: unsupported parameter %s", quote(name), quote(p))
			}
		}
	}
	if !c.req && !c.hasK {
		// The name was checked above to need no escaping, so this is its
		// exact sf-string serialization.
		c.id = `"` + name + `"`
		return c, nil
	}
	id, err := httpsfv.Marshal(it)
	if err != nil {
		return component{}, fail(ReasonMalformed, "component %s: %v", quote(name), err)
	}
	c.id = id
	return c, nil
}

// componentItem builds the identifier for name with optional ;req and ;key.
func componentItem(name string, req bool, key string) httpsfv.Item {
	it := httpsfv.NewItem(name)
	if req {
		it.Params.Add("req", true)
	}
	if key != "" {
		it.Params.Add("key", key)
	}
	return it
}

// value returns the component value of c in m (RFC 9421 §2.1, §2.2, §2.4).
func (m *message) value(c component) (string, error) {
	src := m
	if c.req {
		if !m.response || m.req == nil {
			return "", fail(ReasonMalformed, "component %s: req on a message without a request", c.id)
		}
		src = m.req
	}
	if c.name[0] != '@' {
		return src.field(c)
	}
	if c.name == "@status" {
		if !src.response {
			return "", fail(ReasonMalformed, "@status on a request")
		}
		if src.status < 100 || src.status > 999 {
			return "", fail(ReasonMalformed, "status %d is not three digits", src.status)
		}
		return strconv.Itoa(src.status), nil
	}
	if src.response {
		return "", fail(ReasonMalformed, "request component %s on a response without req", c.id)
	}
	path, query, hasQuery := strings.Cut(src.requestURI, "?")
	switch c.name {
	case "@method":
		return src.method, nil
	case "@authority":
		return normalizeAuthority(src.authority), nil
	case "@scheme":
		if src.scheme == "" {
			return "", fail(ReasonMissingComponent, "@scheme is unknown")
		}
		return src.scheme, nil
	case "@target-uri":
		if src.scheme == "" {
			return "", fail(ReasonMissingComponent, "@target-uri: scheme is unknown")
		}
		return src.scheme + "://" + normalizeAuthority(src.authority) + src.requestURI, nil
	case "@request-target":
		return src.requestURI, nil
	case "@path":
		if path == "" {
			path = "/"
		}
		return path, nil
	case "@query":
		if !hasQuery {
			return "?", nil
		}
		return "?" + query, nil
	}
	return "", fail(ReasonMalformed, "unsupported derived component %s", c.id)
}

// normalizeAuthority lowercases and drops the default https port, following
// RFC 9110 §4.2.3 as RFC 9421 §2.2.3 asks.
func normalizeAuthority(a string) string {
	a = strings.ToLower(a)
	a = strings.TrimSuffix(a, ":443")
	return strings.TrimSuffix(a, ":")
}

// field returns a header component: lines trimmed and joined with ", "
// (RFC 9421 §2.1), or one dictionary member with ;key (§2.1.2).
func (m *message) field(c component) (string, error) {
	hkey := c.hkey
	if hkey == "" {
		hkey = http.CanonicalHeaderKey(c.name)
	}
	lines := m.header[hkey]
	if len(lines) == 0 {
		return "", fail(ReasonMissingComponent, "covered field %s is absent", c.id)
	}
	if len(lines) == 1 && !c.hasK {
		return strings.Trim(lines[0], " \t"), nil
	}
	trimmed := make([]string, len(lines))
	for i, l := range lines {
		trimmed[i] = strings.Trim(l, " \t")
	}
	if !c.hasK {
		return strings.Join(trimmed, ", "), nil
	}
	if len(trimmed) == 1 {
		if _, ok := fastByteMember(trimmed[0], c.key, -1); ok {
			return trimmed[0][len(c.key)+1:], nil // the member's own serialization
		}
	}
	d, err := httpsfv.UnmarshalDictionary(trimmed)
	if err != nil {
		return "", fail(ReasonMalformed, "field %s is not a dictionary: %v", quote(c.name), err)
	}
	mem, ok := d.Get(c.key)
	if !ok {
		return "", fail(ReasonMissingComponent, "field %s has no member %s", quote(c.name), quote(c.key))
	}
	v, err := httpsfv.Marshal(mem.(httpsfv.StructuredFieldValue))
	if err != nil {
		return "", fail(ReasonMalformed, "field %s member %s: %v", quote(c.name), quote(c.key), err)
	}
	return v, nil
}

// signatureBase builds the §2.5 signature base: one line per covered
// component, then "@signature-params". params is the serialized inner list.
func signatureBase(m *message, comps []component, params string) (string, error) {
	var b strings.Builder
	b.Grow(64 * (len(comps) + 2))
	for _, c := range comps {
		v, err := m.value(c)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(v, "\r\n") {
			return "", fail(ReasonMalformed, "component %s contains a line break", c.id)
		}
		b.WriteString(c.id)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(params)
	return b.String(), nil
}

// sigInput is one parsed Signature-Input member.
type sigInput struct {
	comps  []component
	params string // canonical serialization of the inner list, for @signature-params

	created, expires       int64
	hasCreated, hasExpires bool
	nonce, alg, keyid, tag string
}

// has reports whether the covered components include id.
func (s *sigInput) has(id string) bool {
	for _, c := range s.comps {
		if c.id == id {
			return true
		}
	}
	return false
}

// joinLines joins header lines after trimming, rejecting oversized input
// before any structured-field parsing.
func joinLines(h http.Header, name string, max int) (string, bool, error) {
	lines := h.Values(name)
	if len(lines) == 0 {
		return "", false, nil
	}
	if len(lines) == 1 {
		l := strings.Trim(lines[0], " \t")
		if len(l) > max {
			return "", true, fail(ReasonMalformed, "%s exceeds %d bytes", name, max)
		}
		return l, true, nil
	}
	n := 0
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strings.Trim(l, " \t")
		n += len(parts[i]) + 2
		if n > max+2 {
			return "", true, fail(ReasonMalformed, "%s exceeds %d bytes", name, max)
		}
	}
	return strings.Join(parts, ", "), true, nil
}

// parseDict parses a dictionary header and insists on its canonical
// serialization. A duplicated member name, which RFC 8941 parsers resolve by
// silently keeping the last value, therefore fails instead of being read
// differently by different implementations.
func parseDict(name, v string) (*httpsfv.Dictionary, error) {
	d, err := httpsfv.UnmarshalDictionary([]string{v})
	if err != nil {
		return nil, fail(ReasonMalformed, "%s: %v", name, err)
	}
	canon, ok := serializeDict(d)
	if !ok {
		if canon, err = httpsfv.Marshal(d); err != nil {
			return nil, fail(ReasonMalformed, "%s: %v", name, err)
		}
	}
	if canon != v {
		return nil, fail(ReasonMalformed, "%s is not in canonical form (duplicate label or non-canonical spacing)", name)
	}
	return d, nil
}

// onlyMember returns the single member of d, which must be named label.
func onlyMember(name string, d *httpsfv.Dictionary, label string) (httpsfv.Member, error) {
	names := d.Names()
	if len(names) != 1 || names[0] != label {
		return nil, fail(ReasonMalformed, "%s must hold exactly the label %q, has %d labels", name, label, len(names))
	}
	m, _ := d.Get(label)
	return m, nil
}

// parseSignatureInput parses the Signature-Input header for label. It
// checks structure and parameter types only; profile rules (which
// components and parameters are required) belong to the caller.
func parseSignatureInput(h http.Header, label string) (*sigInput, error) {
	v, ok, err := joinLines(h, "Signature-Input", maxSignatureInputBytes)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail(ReasonMissingComponent, "Signature-Input is absent")
	}
	return parseSignatureInputValue(v, label)
}

func parseSignatureInputValue(v, label string) (*sigInput, error) {
	if in, ok := fastSignatureInput(v, label); ok {
		return in, nil
	}
	return slowSignatureInput(v, label)
}

// slowSignatureInput is the general path: httpsfv parses, and the value
// must re-serialize to itself.
func slowSignatureInput(v, label string) (*sigInput, error) {
	d, err := parseDict("Signature-Input", v)
	if err != nil {
		return nil, err
	}
	m, err := onlyMember("Signature-Input", d, label)
	if err != nil {
		return nil, err
	}
	il, ok := m.(httpsfv.InnerList)
	if !ok {
		return nil, fail(ReasonMalformed, "Signature-Input %q is not an inner list", label)
	}
	if len(il.Items) > maxComponents {
		return nil, fail(ReasonMalformed, "Signature-Input covers %d components, max %d", len(il.Items), maxComponents)
	}
	in := &sigInput{}
	seen := make(map[string]bool, len(il.Items))
	for _, it := range il.Items {
		c, err := parseComponent(it)
		if err != nil {
			return nil, err
		}
		if seen[c.id] {
			return nil, fail(ReasonMalformed, "component %s is covered twice", c.id)
		}
		seen[c.id] = true
		in.comps = append(in.comps, c)
	}
	if il.Params != nil {
		for _, p := range il.Params.Names() {
			pv, _ := il.Params.Get(p)
			switch p {
			case "created", "expires":
				n, ok := pv.(int64)
				if !ok || n < 0 {
					return nil, fail(ReasonMalformed, "%s must be a non-negative integer", p)
				}
				if p == "created" {
					in.created, in.hasCreated = n, true
				} else {
					in.expires, in.hasExpires = n, true
				}
			case "nonce", "alg", "keyid", "tag":
				s, ok := pv.(string)
				if !ok {
					return nil, fail(ReasonMalformed, "%s must be a string", p)
				}
				switch p {
				case "nonce":
					in.nonce = s
				case "alg":
					in.alg = s
				case "keyid":
					in.keyid = s
				case "tag":
					in.tag = s
				}
			default:
				return nil, fail(ReasonMalformed, "unsupported signature parameter %s", quote(p))
			}
		}
	}
	// v is canonical and holds only "label=" + the inner list, so the rest of
	// v is the inner list's serialization, the @signature-params value.
	in.params = v[len(label)+1:]
	return in, nil
}

// parseSignatureValue returns the signature bytes for label from a
// Signature header value.
func parseSignatureValue(v, label string) ([]byte, error) {
	if len(v) > maxSignatureBytes {
		return nil, fail(ReasonMalformed, "Signature exceeds %d bytes", maxSignatureBytes)
	}
	if b, ok := fastByteMember(v, label, -1); ok {
		return b, nil
	}
	d, err := parseDict("Signature", v)
	if err != nil {
		return nil, err
	}
	m, err := onlyMember("Signature", d, label)
	if err != nil {
		return nil, err
	}
	it, ok := m.(httpsfv.Item)
	if !ok {
		return nil, fail(ReasonMalformed, "Signature %q is not a byte sequence", label)
	}
	sig, ok := it.Value.([]byte)
	if !ok {
		return nil, fail(ReasonMalformed, "Signature %q is not a byte sequence", label)
	}
	if it.Params != nil && len(it.Params.Names()) > 0 {
		return nil, fail(ReasonMalformed, "Signature %q has parameters", label)
	}
	return sig, nil
}

// signatureHeader serializes `label=:sig:`.
func signatureHeader(label string, sig []byte) string {
	return byteMember(label, sig)
}

// fastByteMember recognizes the canonical serialization of a dictionary
// with the single member key=:BASE64: (of n bytes when n >= 0) without a
// general parser, for the headers treaty itself sends on every call. It
// accepts exactly the strings that parseDict would accept as that
// dictionary; any other input returns ok == false and must take the general
// path, which also produces the error.
func fastByteMember(v, key string, n int) ([]byte, bool) {
	if !sfKey(key) || len(v) < len(key)+3 || v[:len(key)] != key || v[len(key)] != '=' || v[len(key)+1] != ':' || v[len(v)-1] != ':' {
		return nil, false
	}
	enc := v[len(key)+2 : len(v)-1]
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, false
		}
	}
	// Strict padded decoding of alphabet-only input accepts exactly the
	// canonical encodings: padding present, unused bits zero.
	b, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil || (n >= 0 && len(b) != n) {
		return nil, false
	}
	return b, true
}

// sfKey reports whether k is an RFC 8941 key: lcalpha or "*", then lcalpha,
// digits, "_", "-", "." or "*".
func sfKey(k string) bool {
	if k == "" || !(k[0] >= 'a' && k[0] <= 'z' || k[0] == '*') {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}
