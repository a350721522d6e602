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
	"strings"
	"unicode/utf8"
)

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
	if err := checkKeys(body, fieldNames(reflect.TypeOf(v).Elem())); err != nil {
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
// of names, or that comes twice. A body that is not an object is left to the
// decoder to refuse.
func checkKeys(body []byte, names map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		switch {
		case seen[key]:
			return fmt.Errorf("key %q given twice", key)
		case !names[key]:
			for n := range names {
				if strings.EqualFold(n, key) {
					return fmt.Errorf("key %q: write it %q", key, n)
				}
			}
			return fmt.Errorf("json: unknown field %q", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
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
