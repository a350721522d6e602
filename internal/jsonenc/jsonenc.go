// Package jsonenc appends JSON values by hand, byte for byte as
// encoding/json writes them, for the few hot paths where json.Marshal's
// reflection costs more than the value.
package jsonenc

import "encoding/json"

// AppendString appends s as encoding/json writes a string: between quotes as
// is when json leaves every byte alone (printable ASCII other than the quote,
// the backslash and the HTML-escaped <, > and &), else by json.Marshal itself.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			m, _ := json.Marshal(s)
			return append(b, m...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
