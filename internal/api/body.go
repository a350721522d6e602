package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// presizeMax bounds the buffer readBody makes up front from a request's
// Content-Length: a client that announces a large body and sends none costs
// no more than this. Larger bodies grow as io.ReadAll grows them.
const presizeMax = 64 << 10

// readBody is io.ReadAll of r with the buffer sized once from the request's
// Content-Length (n, -1 when unknown), up to presizeMax: a call's body, read
// by io.ReadAll, cost three allocations and twice its size.
func readBody(r io.Reader, n int64) ([]byte, error) {
	size := 512
	if n >= 0 && n < presizeMax {
		size = int(n) + 1 // room to read the EOF without growing
	} else if n >= presizeMax {
		size = presizeMax
	}
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the growth
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// parseBody decodes body, one JSON object, into v, a pointer to a request
// struct, and refuses what encoding/json would accept but read in a way its
// sender may not have meant:
//   - bytes that are not UTF-8 (encoding/json replaces them in strings and
//     passes them on in a json.RawMessage, such as a call's input);
//   - a key twice (encoding/json keeps the last: a check and a log that read
//     the first would disagree with the node about "peer" or "within");
//   - a key not spelled exactly as documented ("Peer", "PEER" or "peer" with a
//     Kelvin sign: encoding/json matches keys case-insensitively, Unicode
//     folding included);
//   - unknown keys and anything after the object.
func parseBody(body []byte, v any) error {
	if !utf8.Valid(body) {
		return fmt.Errorf("not UTF-8 (at byte %d)", invalidAt(body))
	}
	if err := checkKeys(body, fieldNamesOf(reflect.TypeOf(v).Elem())); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// fieldNamesOf is fieldNames, worked out once per request type.
func fieldNamesOf(t reflect.Type) map[string]bool {
	if m, ok := knownFields.Load(t); ok {
		return m.(map[string]bool)
	}
	m := fieldNames(t)
	knownFields.Store(t, m)
	return m
}

// knownFields caches fieldNames by type: the request types are a fixed few.
var knownFields sync.Map

// fieldNames are the JSON keys of struct type t's fields.
func fieldNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return names
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// checkKeys refuses a top-level key of body's object that is not exactly one
// of names, or that comes twice. A body that is not an object, or not JSON,
// is left to the decoder to refuse. It reads the keys in one pass over the
// bytes and steps over the values without decoding them: on the call path
// encoding/json's tokenizer cost about as much as the decoding itself.
func checkKeys(body []byte, names map[string]bool) error {
	seen := make([]string, 0, 8)
	return topKeys(body, func(key string) error {
		if slices.Contains(seen, key) {
			return fmt.Errorf("key %q given twice", key)
		}
		if !names[key] {
			for name := range names {
				if strings.EqualFold(name, key) {
					return fmt.Errorf("key %q: write it %q", key, name)
				}
			}
			return fmt.Errorf("json: unknown field %q", key)
		}
		seen = append(seen, key)
		return nil
	})
}

// topKeys calls fn with each key of the object b holds, in order, decoded.
// It stops quietly where b is not well-formed JSON: the decoder that reads
// b afterwards refuses it.
func topKeys(b []byte, fn func(string) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) && b[i] == '"' {
		end, escaped := skipString(b, i)
		if end > len(b) {
			return nil
		}
		key := string(b[i+1 : end-1])
		if escaped && json.Unmarshal(b[i:end], &key) != nil {
			return nil
		}
		if err := fn(key); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil
		}
		i = skipSpace(b, skipValue(b, skipSpace(b, i+1)))
		if i >= len(b) || b[i] != ',' {
			return nil
		}
		i = skipSpace(b, i+1)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal at b[i] (a quote),
// len(b)+1 when it is not closed, and whether it holds an escape.
func skipString(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); {
		k := bytes.IndexAny(b[j:], `"\`)
		if k < 0 {
			break
		}
		j += k
		if b[j] == '"' {
			return j + 1, escaped
		}
		escaped = true
		j += 2 // the backslash and the byte it escapes
	}
	return len(b) + 1, escaped
}

// skipValue returns the index after the value at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i, _ = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
	}
	return i
}

// params parses r's query and refuses what a reader could take two ways: a
// malformed pair (url.Values.Get would drop it silently), a parameter given
// twice (Get takes the first, another reader the last), a value that is not
// UTF-8.
func params(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("bad query: %w", err)
	}
	for name, vs := range q {
		if len(vs) > 1 {
			return nil, fmt.Errorf("query parameter %q given %d times", name, len(vs))
		}
		if !utf8.ValidString(name) || !utf8.ValidString(vs[0]) {
			return nil, fmt.Errorf("query parameter %q is not UTF-8", name)
		}
	}
	return q, nil
}
