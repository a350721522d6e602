package wire

import "net/http"

// fastSignatureInput recognizes, without allocating a parse tree, the
// canonical Signature-Input shapes treaty itself sends:
//
//	label=("name" "name";req;key="k" ...);created=N;expires=N;nonce="s";alg="s";keyid="s";tag="s"
//
// with lowercase-token component names, only req and key component
// parameters, and only the signature parameters parseSignatureInputValue
// knows, none repeated, integers canonical and non-negative, strings canonical.
// It returns ok == false for anything else, including every input that is
// not canonical or is invalid, and the caller then takes the httpsfv path,
// which gives the same result or the error. FuzzCanonicalDict checks that
// whenever this answers, httpsfv parsing answers the same.
func fastSignatureInput(v, label string) (*sigInput, bool) {
	if len(v) < len(label)+3 || v[:len(label)] != label || v[len(label)] != '=' || v[len(label)+1] != '(' {
		return nil, false
	}
	if !sfKey(label) {
		return nil, false
	}
	in := &sigInput{comps: make([]component, 0, 8), params: v[len(label)+1:]}
	i := len(label) + 2
	for first := true; ; first = false {
		if i >= len(v) {
			return nil, false
		}
		if v[i] == ')' {
			i++
			break
		}
		if !first {
			if v[i] != ' ' {
				return nil, false
			}
			i++
		}
		start := i
		name, j, ok := scanString(v, i)
		if !ok || !componentName(name) {
			return nil, false
		}
		i = j
		c := component{name: name, hkey: headerKey(name)}
		for i < len(v) && v[i] == ';' {
			switch {
			case hasAt(v, i+1, "req") && (i+4 == len(v) || v[i+4] == ';' || v[i+4] == ' ' || v[i+4] == ')'):
				if c.req {
					return nil, false
				}
				c.req = true
				i += 4
			case hasAt(v, i+1, "key="):
				if c.hasK || name[0] == '@' {
					return nil, false
				}
				k, j, ok := scanString(v, i+5)
				if !ok || k == "" {
					return nil, false
				}
				c.key, c.hasK = k, true
				i = j
			default:
				return nil, false
			}
		}
		c.id = v[start:i]
		for _, o := range in.comps {
			if o.id == c.id {
				return nil, false
			}
		}
		in.comps = append(in.comps, c)
		if len(in.comps) > maxComponents {
			return nil, false
		}
	}
	seen := 0
	for i < len(v) {
		if v[i] != ';' {
			return nil, false
		}
		i++
		k := 0
		for i+k < len(v) && v[i+k] >= 'a' && v[i+k] <= 'z' {
			k++
		}
		key := v[i : i+k]
		i += k
		if i >= len(v) || v[i] != '=' {
			return nil, false
		}
		i++
		bit := 0
		switch key {
		case "created", "expires":
			n, j, ok := scanInt(v, i)
			if !ok {
				return nil, false
			}
			if key == "created" {
				in.created, in.hasCreated, bit = n, true, 1
			} else {
				in.expires, in.hasExpires, bit = n, true, 2
			}
			i = j
		case "nonce", "alg", "keyid", "tag":
			str, j, ok := scanString(v, i)
			if !ok {
				return nil, false
			}
			switch key {
			case "nonce":
				in.nonce, bit = str, 4
			case "alg":
				in.alg, bit = str, 8
			case "keyid":
				in.keyid, bit = str, 16
			case "tag":
				in.tag, bit = str, 32
			}
			i = j
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	return in, true
}

func hasAt(v string, i int, s string) bool { return len(v)-i >= len(s) && v[i:i+len(s)] == s }

// componentName reports whether name is what parseComponent accepts and
// serializes without escapes.
func componentName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || (c == '@' && i == 0)) {
			return false
		}
	}
	return true
}

// scanString reads a canonical sf-string at v[i:]: printable ASCII, with
// only `"` and `\` escaped. It returns the unescaped value and the index
// after the closing quote. It refuses escapes so the fast path stays a
// plain substring; strings with escapes take the httpsfv path.
func scanString(v string, i int) (string, int, bool) {
	if i >= len(v) || v[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(v); j++ {
		c := v[j]
		switch {
		case c == '"':
			return v[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return "", 0, false
		}
	}
	return "", 0, false
}

// scanInt reads a canonical non-negative sf-integer (no leading zeros,
// at most 15 digits) at v[i:].
func scanInt(v string, i int) (int64, int, bool) {
	j := i
	var n int64
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		n = n*10 + int64(v[j]-'0')
		j++
	}
	d := j - i
	if d == 0 || d > 15 || (d > 1 && v[i] == '0') {
		return 0, 0, false
	}
	return n, j, true
}

// headerKey returns the canonical header key of a field component name
// ("" for derived components), without allocating for treaty's own fields.
func headerKey(name string) string {
	switch name {
	case "content-digest":
		return HeaderContentDigest
	case "treaty-audience":
		return HeaderAudience
	case "treaty-capability":
		return HeaderCapability
	case "signature":
		return HeaderSignature
	case "treaty-chain":
		return HeaderChain
	}
	if name[0] == '@' {
		return ""
	}
	return http.CanonicalHeaderKey(name)
}
