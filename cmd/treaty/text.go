package main

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text a human reads in a terminal (tables, show pages, error lines) carries
// strings other parties chose: peers' nicknames and capability descriptions,
// group members' motion texts and keys, the fields of a decision record from
// anywhere. A control character or a bidi override in them could move the
// cursor, retitle the window or reorder what the operator sees, so every such
// rune is printed as a visible escape instead. Output for programs (JSON,
// call results, exports) is left exact.

// unsafeRune reports whether r must not reach a terminal raw: C0 and C1
// controls, DEL, and format characters (bidi overrides, zero-width joiners).
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// escapeRune writes r as a JSON-style escape (\u001b, \u202e; a surrogate
// pair above the BMP), which reads as what it is and stays valid inside JSON.
func escapeRune(b *strings.Builder, r rune) {
	if r > 0xffff {
		r -= 0x10000
		fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		return
	}
	fmt.Fprintf(b, `\u%04x`, r)
}

// clean makes s safe to print on one line: every control and format
// character, newlines and tabs included, and every invalid UTF-8 byte is
// escaped.
func clean(s string) string {
	return escapeText(s, false)
}

// oneLine is an error message as one line: the lines of a multi-line message
// (joined errors, a YAML parser's list) are joined with "; ", or a space after
// a colon, and what remains is cleaned.
func oneLine(msg string) string {
	var b strings.Builder
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
	}
	return clean(b.String())
}

// escapeText escapes s's unsafe runes and invalid bytes; keepLayout keeps its
// newlines and tabs. Text with nothing to escape is returned as is.
func escapeText(s string, keepLayout bool) string {
	ok := true
	for i, r := range s {
		if unsafeRune(r) || r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case keepLayout && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case unsafeRune(r):
			escapeRune(&b, r)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// tprintf is fmt.Fprintf for text a terminal shows: every argument of a
// string kind is cleaned, so a field can neither inject a control sequence
// nor start a row of its own.
func tprintf(w io.Writer, format string, a ...any) {
	for i, v := range a {
		rv := reflect.ValueOf(v)
		if !rv.IsValid() || rv.Kind() != reflect.String {
			continue
		}
		if s, ok := v.(fmt.Stringer); ok {
			a[i] = clean(s.String())
		} else {
			a[i] = clean(rv.String())
		}
	}
	fmt.Fprintf(w, format, a...)
}

// termWriter escapes what clean escapes except the newlines and tabs that lay
// out a table or a page. Each write is escaped on its own: the printers write
// whole strings, never part of a rune.
type termWriter struct{ w io.Writer }

// termSafe wraps w, the output of a listing or a show page, for a terminal.
func termSafe(w io.Writer) io.Writer { return termWriter{w} }

func (t termWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(t.w, escapeText(string(p), true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// isTerminal reports whether w is a terminal (a character device), where raw
// data from others must not be written unescaped.
func isTerminal(w io.Writer) bool {
	if c, ok := w.(*checkedWriter); ok {
		w = c.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
