package wire

import (
	"encoding/base64"
	"strconv"

	"github.com/dunglas/httpsfv"
)

// Serialization of the structured fields treaty sends on every call, without
// httpsfv's per-byte allocations. Each function produces exactly what
// httpsfv.Marshal produces for the same value (TestSerializeMatchesHTTPSFV
// and FuzzCanonicalDict check this) and reports ok == false for any value
// it does not handle, so that the caller falls back to httpsfv.Marshal.

// byteMember serializes the dictionary {key: byte sequence b}: `key=:B64:`.
// key must be a valid structured-field key (callers pass constants).
func byteMember(key string, b []byte) string {
	buf := make([]byte, 0, len(key)+3+base64.StdEncoding.EncodedLen(len(b)))
	buf = append(buf, key...)
	buf = append(buf, '=', ':')
	buf = base64.StdEncoding.AppendEncode(buf, b)
	return string(append(buf, ':'))
}

// serializeDict serializes d as RFC 8941 §4.1.2 does.
func serializeDict(d *httpsfv.Dictionary) (string, bool) {
	buf := make([]byte, 0, 256)
	for i, k := range d.Names() {
		if i > 0 {
			buf = append(buf, ',', ' ')
		}
		buf = append(buf, k...)
		m, _ := d.Get(k)
		var ok bool
		switch v := m.(type) {
		case httpsfv.Item:
			if b, isBool := v.Value.(bool); isBool && b {
				buf, ok = appendParams(buf, v.Params)
			} else {
				buf = append(buf, '=')
				buf, ok = appendItem(buf, v)
			}
		case httpsfv.InnerList:
			buf = append(buf, '=', '(')
			ok = true
			for j, it := range v.Items {
				if j > 0 {
					buf = append(buf, ' ')
				}
				if buf, ok = appendItem(buf, it); !ok {
					break
				}
			}
			if ok {
				buf = append(buf, ')')
				buf, ok = appendParams(buf, v.Params)
			}
		}
		if !ok {
			return "", false
		}
	}
	return string(buf), true
}

func appendItem(buf []byte, it httpsfv.Item) ([]byte, bool) {
	buf, ok := appendBare(buf, it.Value)
	if !ok {
		return buf, false
	}
	return appendParams(buf, it.Params)
}

func appendParams(buf []byte, p *httpsfv.Params) ([]byte, bool) {
	if p == nil {
		return buf, false // httpsfv refuses a nil Params; let it report that
	}
	for _, k := range p.Names() {
		v, _ := p.Get(k)
		buf = append(buf, ';')
		buf = append(buf, k...)
		if b, isBool := v.(bool); isBool && b {
			continue
		}
		buf = append(buf, '=')
		var ok bool
		if buf, ok = appendBare(buf, v); !ok {
			return buf, false
		}
	}
	return buf, true
}

// appendBare handles integers, strings, byte sequences and booleans.
func appendBare(buf []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case int64:
		if v > 999_999_999_999_999 || v < -999_999_999_999_999 {
			return buf, false
		}
		return strconv.AppendInt(buf, v, 10), true
	case string:
		buf = append(buf, '"')
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < 0x20 || c > 0x7e {
				return buf, false
			}
			if c == '"' || c == '\\' {
				buf = append(buf, '\\')
			}
			buf = append(buf, c)
		}
		return append(buf, '"'), true
	case []byte:
		buf = append(buf, ':')
		buf = base64.StdEncoding.AppendEncode(buf, v)
		return append(buf, ':'), true
	case bool:
		if v {
			return append(buf, '?', '1'), true
		}
		return append(buf, '?', '0'), true
	}
	return buf, false
}
