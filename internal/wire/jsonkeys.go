package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// KeyFields names the struct fields encoding/json decodes an object's keys
// onto, so UnambiguousKeys can refuse a key that matches one only under case
// folding. Sub gives the fields of the object (or of each object in the
// array) that a key's value is.
type KeyFields struct {
	Names []string
	Sub   map[string]*KeyFields
}

// keyFrame is one open JSON container while UnambiguousKeys walks b.
type keyFrame struct {
	object  bool
	wantKey bool                // object: the next token is a key or '}'
	key     string              // object: the key whose value comes next
	keys    map[string]struct{} // object: keys seen so far
	fields  *KeyFields          // object: its fields; array: its objects' fields
}

// UnambiguousKeys refuses b, JSON from a peer, when readers could disagree
// on it: an object anywhere repeats a key (encoding/json keeps the last,
// others the first), or an object described by fields holds a key equal to
// one of its field names only under case folding (encoding/json matches
// "Name" or "ſtream" to name and stream). what names b in the error, an
// *Error with ReasonMalformed. Numbers stay text (UseNumber), so one out of
// float64's range does not end the walk early; any input the walk cannot
// read is refused.
func UnambiguousKeys(b []byte, what string, fields *KeyFields) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*keyFrame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fail(ReasonMalformed, "%s: %v", what, err)
		}
		var top *keyFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			k, ok := tok.(string)
			if !ok { // '}'
				stack = stack[:len(stack)-1]
				continue
			}
			if _, dup := top.keys[k]; dup {
				return fail(ReasonMalformed, "%s repeats key %s", what, quote(k))
			}
			if top.fields != nil {
				for _, f := range top.fields.Names {
					if k != f && strings.EqualFold(k, f) {
						return fail(ReasonMalformed, "%s key %s is not the field name %q", what, quote(k), f)
					}
				}
			}
			top.keys[k] = struct{}{}
			top.key, top.wantKey = k, false
			continue
		}
		d, isDelim := tok.(json.Delim)
		if isDelim && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.object {
			top.wantKey = true
		}
		if !isDelim {
			continue
		}
		fr := &keyFrame{object: d == '{', wantKey: d == '{'}
		switch {
		case top == nil:
			fr.fields = fields
		case !top.object:
			fr.fields = top.fields
		case top.fields != nil:
			fr.fields = top.fields.Sub[top.key]
		}
		if fr.object {
			fr.keys = map[string]struct{}{}
		}
		stack = append(stack, fr)
	}
}
