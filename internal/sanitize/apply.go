package sanitize

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/jsonenc"
)

// Clean is output of the outbound sanitizer under one data policy. Only this
// package can make a non-empty Clean, so a sending path that accepts a Clean
// cannot be handed unscrubbed bytes.
type Clean struct {
	b     []byte
	tally tally
}

// Bytes returns a copy of the sanitized bytes.
func (c Clean) Bytes() []byte { return bytes.Clone(c.b) }

// Peek calls f with the sanitized bytes themselves, not a copy, for a caller
// that only reads them (hashes, signs, writes them to an io.Writer, which
// must not keep them): f must neither change them nor keep them after it
// returns. It saves the copy Bytes makes, one per call on the call path.
func (c Clean) Peek(f func([]byte)) { f(c.b) }

// Len is the length of the sanitized bytes.
func (c Clean) Len() int { return len(c.b) }

// Report is what was found and done, never the values. Each call builds a
// new Report, which the caller may keep and change.
func (c Clean) Report() Report { return c.tally.report() }

// Strongest is the report's Strongest without building the report.
func (c Clean) Strongest() Action { return c.tally.strongest }

// AppendReportJSON appends what json.Marshal gives for c.Report(), without
// building the report's maps: every call's audit entries hold it.
func (c Clean) AppendReportJSON(b []byte) []byte {
	var buf [len(tally{}.inline)]tallyRow
	rows := append(buf[:0], c.tally.inline[:min(c.tally.n, len(c.tally.inline))]...)
	rows = append(rows, c.tally.more...)
	slices.SortFunc(rows, func(x, y tallyRow) int { // json's order of map keys
		if x.cat != y.cat {
			return strings.Compare(string(x.cat), string(y.cat))
		}
		return strings.Compare(string(x.act), string(y.act))
	})
	b = append(b, `{"counts":{`...)
	for i, r := range rows {
		switch {
		case i == 0:
		case r.cat != rows[i-1].cat:
			b = append(b, "},"...)
		default:
			b = append(b, ',')
		}
		if i == 0 || r.cat != rows[i-1].cat {
			b = jsonenc.AppendString(b, string(r.cat))
			b = append(b, ":{"...)
		}
		b = jsonenc.AppendString(b, string(r.act))
		b = strconv.AppendInt(append(b, ':'), int64(r.n), 10)
	}
	if len(rows) > 0 {
		b = append(b, '}')
	}
	b = append(b, `},"action":`...)
	b = jsonenc.AppendString(b, string(c.tally.strongest))
	return append(b, '}')
}

// Report counts findings per category and action; it never holds values, so
// it may travel with the message and into the audit log.
type Report struct {
	Counts    map[Category]map[Action]int `json:"counts"`
	Strongest Action                      `json:"action"` // "pass" when nothing was changed
}

// tally is a Report without its maps: Apply counts findings into it and
// Report builds the maps only when asked for them.
type tally struct {
	strongest Action
	n         int
	inline    [6]tallyRow // the first rows: a call rarely has more
	more      []tallyRow
}

type tallyRow struct {
	cat Category
	act Action
	n   int
}

func (t *tally) add(c Category, a Action) {
	for i := 0; i < min(t.n, len(t.inline)); i++ {
		if r := &t.inline[i]; r.cat == c && r.act == a {
			r.n++
			return
		}
	}
	for i := range t.more {
		if r := &t.more[i]; r.cat == c && r.act == a {
			r.n++
			return
		}
	}
	if t.n < len(t.inline) {
		t.inline[t.n] = tallyRow{c, a, 1}
	} else {
		t.more = append(t.more, tallyRow{c, a, 1})
	}
	t.n++
}

func (t *tally) report() Report {
	r := Report{Strongest: t.strongest, Counts: map[Category]map[Action]int{}}
	for _, rows := range [][]tallyRow{t.inline[:min(t.n, len(t.inline))], t.more} {
		for _, row := range rows {
			m := r.Counts[row.cat]
			if m == nil {
				m = map[Action]int{}
				r.Counts[row.cat] = m
			}
			m[row.act] = row.n
		}
	}
	return r
}

// Result is a dry run, in the shape of `treaty scan --json`.
type Result struct {
	Action   Action    `json:"action"` // pass, redact, pseudonymize or block: the strongest applied
	Output   string    `json:"output"` // what would be sent; empty when blocked
	Findings []Finding `json:"findings"`
}

// BlockedError is returned by Apply when the policy blocks a finding. It names
// the categories, never the values, so it is safe to show and to audit.
type BlockedError struct {
	Categories []Category // sorted, each once
}

func (e *BlockedError) Error() string {
	names := make([]string, len(e.Categories))
	for i, c := range e.Categories {
		names[i] = string(c)
	}
	return "sanitize: blocked by policy: " + strings.Join(names, ", ")
}

// ErrNoPeer is returned by Apply without a peer: pseudonyms are per peer.
var ErrNoPeer = errors.New("sanitize: Apply needs the peer's ID")

// Apply sanitizes data for peer (its did:key string) under pol. Pseudonyms
// issued are recorded so that Restore can undo them for the same peer. When
// data is valid JSON the output is valid JSON. A finding whose action is block
// makes Apply return a *BlockedError and no Clean.
func (s *Sanitizer) Apply(peer string, pol Policy, data []byte) (Clean, error) {
	return s.ApplyContext(context.Background(), peer, pol, data)
}

// ApplyContext is Apply bounded by ctx (the call's deadline): when ctx ends
// before the content is scanned and rewritten it returns an error wrapping
// ErrDeadline, and nothing is sent.
func (s *Sanitizer) ApplyContext(ctx context.Context, peer string, pol Policy, data []byte) (Clean, error) {
	if peer == "" {
		return Clean{}, ErrNoPeer
	}
	if len(data) > s.maxInput {
		return Clean{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), s.maxInput)
	}
	if err := pol.Validate(); err != nil {
		return Clean{}, err
	}
	fs, err := s.scan(ctx, data, 0)
	if err != nil {
		return Clean{}, err
	}
	rep, blocked := report(pol, fs)
	if blocked != nil {
		return Clean{}, blocked
	}
	out, err := s.rewrite(ctx, peer, pol, data, fs, true)
	if err != nil {
		return Clean{}, err
	}
	return Clean{b: out, tally: rep}, nil
}

// DryRun shows what Apply would do, without recording pseudonyms. Input over
// MaxInputBytes is reported as blocked, with no findings.
func (s *Sanitizer) DryRun(peer string, pol Policy, data []byte) Result {
	r, _ := s.DryRunContext(context.Background(), peer, pol, data)
	return r
}

// DryRunContext is DryRun bounded by ctx: when ctx ends first it returns a
// block result and an error wrapping ErrDeadline.
func (s *Sanitizer) DryRunContext(ctx context.Context, peer string, pol Policy, data []byte) (Result, error) {
	if len(data) > s.maxInput {
		return Result{Action: ActionBlock, Findings: []Finding{}}, nil
	}
	fs, err := s.scan(ctx, data, 0)
	if err != nil {
		return Result{Action: ActionBlock, Findings: []Finding{}}, err
	}
	if fs == nil {
		fs = []Finding{}
	}
	rep, blocked := report(pol, fs)
	if blocked != nil {
		return Result{Action: ActionBlock, Findings: fs}, nil
	}
	out, err := s.rewrite(ctx, peer, pol, data, fs, false)
	if err != nil {
		return Result{Action: ActionBlock, Findings: fs}, err
	}
	return Result{Action: rep.strongest, Output: string(out), Findings: fs}, nil
}

func report(pol Policy, fs []Finding) (tally, *BlockedError) {
	rep := tally{strongest: ActionPass}
	var blocked []Category
	for _, f := range fs {
		a := pol.ActionFor(f.Category)
		rep.add(f.Category, a)
		if a.strength() > rep.strongest.strength() {
			rep.strongest = a
		}
		if a == ActionBlock && !slices.Contains(blocked, f.Category) {
			blocked = append(blocked, f.Category)
		}
	}
	if len(blocked) > 0 {
		slices.Sort(blocked)
		return rep, &BlockedError{Categories: blocked}
	}
	return rep, nil
}

// piece is one byte range to replace. In a JSON document a finding may be cut
// into pieces at string boundaries, so that the structure stays intact.
type piece struct {
	s, e int
	kind byte // 't' text, 's' inside a JSON string, 'n' a whole JSON number
}

// maxPooledToks bounds the token lists kept for reuse across calls.
const maxPooledToks = 4096

func (s *Sanitizer) rewrite(ctx context.Context, peer string, pol Policy, data []byte, fs []Finding, record bool) ([]byte, error) {
	changes := false
	for _, f := range fs {
		if a := pol.ActionFor(f.Category); a == ActionRedact || a == ActionPseudonymize {
			changes = true
			break
		}
	}
	if !changes {
		return bytes.Clone(data), nil
	}
	var toks []jsonTok
	if len(data) > 0 && (data[0] == '{' || data[0] == '[') {
		tp := s.toks.Get().(*[]jsonTok)
		defer func() {
			if cap(toks) <= maxPooledToks { // a huge document's list is not kept
				*tp = toks[:0]
				s.toks.Put(tp)
			}
		}()
		toks = (*tp)[:0]
	}
	isJSON := validJSON(data, &toks)
	var out bytes.Buffer
	out.Grow(len(data) + 32*len(fs))
	pos := 0
	var pieces []piece
	cur := jsonCursor{tok: -1}
	var memo map[string]string // built at the first pseudonym
	for i, f := range fs {
		if i&255 == 255 && ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%d bytes): %w", ErrDeadline, len(data), ctx.Err())
		}
		a := pol.ActionFor(f.Category)
		if a != ActionRedact && a != ActionPseudonymize {
			continue
		}
		pieces = pieces[:0]
		if isJSON {
			pieces = jsonPieces(data, toks, f.Start, f.End, &cur, pieces)
		} else {
			pieces = append(pieces, piece{f.Start, f.End, 't'})
		}
		for _, p := range pieces {
			if p.s < pos {
				p.s = pos // an earlier piece was widened over an escape
			}
			if p.e <= p.s {
				continue
			}
			out.Write(data[pos:p.s])
			if a == ActionRedact {
				// Written in place: no string built per finding.
				if p.kind == 'n' {
					out.WriteByte('"')
				}
				out.WriteString("<redacted:")
				out.WriteString(string(f.Category))
				out.WriteByte('>')
				if p.kind == 'n' {
					out.WriteByte('"')
				}
				pos = p.e
				continue
			}
			e := vaultEntry{Value: data[p.s:p.e]}
			switch p.kind {
			case 's':
				e.Value = unescapeJSON(e.Value)
			case 'n':
				e.Num = true
			}
			// A value repeated in one message is looked up once.
			mk := string(f.Category) + "\x00" + string(e.Value)
			if e.Num {
				mk += "\x00n"
			}
			tok, ok := memo[mk]
			if !ok {
				var err error
				if tok, err = s.vault.issue(s.mac, peer, f.Category, e, record); err != nil {
					return nil, err
				}
				if memo == nil {
					memo = map[string]string{}
				}
				memo[mk] = tok
			}
			if p.kind == 'n' {
				out.WriteByte('"') // a number becomes a string token
			}
			out.WriteString(tok)
			if p.kind == 'n' {
				out.WriteByte('"')
			}
			pos = p.e
		}
	}
	out.Write(data[pos:])
	return out.Bytes(), nil
}

// jsonTok is a string (with its quotes) or a number in a valid JSON document
// (validJSON lists them).
type jsonTok struct {
	s, e int
	str  bool
}

// jsonCursor remembers where the escape walk of jsonPieces stopped: an
// escape-aligned position in string token tok. Findings come sorted and
// disjoint, so the next walk in the same string resumes there instead of at
// the string's start, and a string with many findings is walked once.
type jsonCursor struct {
	tok, pos int
}

// jsonPieces cuts [fs, fe) at JSON token boundaries: the part inside each
// string (widened so no escape sequence is split) and every number it
// touches (replaced whole, as a string). Calls must come in order of fs,
// with disjoint ranges, sharing cur.
func jsonPieces(d []byte, toks []jsonTok, fs, fe int, cur *jsonCursor, out []piece) []piece {
	i, _ := slices.BinarySearchFunc(toks, fs, func(t jsonTok, pos int) int {
		if t.e <= pos {
			return -1
		}
		if t.s > pos {
			return 1
		}
		return 0
	})
	for ; i < len(toks) && toks[i].s < fe; i++ {
		t := toks[i]
		if t.e <= fs {
			continue
		}
		if !t.str {
			out = append(out, piece{t.s, t.e, 'n'})
			continue
		}
		cs, ce := t.s+1, t.e-1
		s, e := max(fs, cs), min(fe, ce)
		if s >= e {
			continue
		}
		// Walk the escapes to find safe cut points, from the string's start
		// or from where the previous finding's walk left off.
		j := cs
		if cur.tok == i && cur.pos > cs && cur.pos <= s {
			j = cur.pos
		}
		for j < ce {
			if j >= e {
				break
			}
			if d[j] != '\\' {
				// Plain bytes up to the next escape or e: none widens the
				// cut, and the cursor moves to the last one that ends
				// within the finding.
				stop := min(ce, e)
				if k := bytes.IndexByte(d[j:stop], '\\'); k >= 0 {
					stop = j + k
				}
				if last := min(stop, fe); last > j {
					cur.tok, cur.pos = i, last
				}
				j = stop
				continue
			}
			n := 1
			if d[j] == '\\' {
				n = 2
				if j+1 < ce && d[j+1] == 'u' {
					n = 6
				}
			}
			if j < s && s < j+n {
				s = j
			}
			if j < e && e < j+n {
				e = j + n
			}
			if j >= e {
				break
			}
			if j+n <= fe {
				cur.tok, cur.pos = i, j+n
			}
			j += n
		}
		out = append(out, piece{s, e, 's'})
	}
	return out
}

// unescapeJSON decodes the escapes of a piece of JSON string content.
func unescapeJSON(b []byte) []byte {
	if bytes.IndexByte(b, '\\') < 0 {
		return bytes.Clone(b)
	}
	q := make([]byte, 0, len(b)+2)
	q = append(q, '"')
	q = append(q, b...)
	q = append(q, '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return bytes.Clone(b)
	}
	return []byte(s)
}

// escapeJSON encodes b as JSON string content (no quotes).
func escapeJSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == '"':
			out = append(out, '\\', '"')
		case r == '\\':
			out = append(out, '\\', '\\')
		case r == '\n':
			out = append(out, '\\', 'n')
		case r == '\r':
			out = append(out, '\\', 'r')
		case r == '\t':
			out = append(out, '\\', 't')
		case r < 0x20 || (r == utf8.RuneError && n == 1):
			out = append(out, fmt.Sprintf(`\u%04x`, b[i])...)
		default:
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// Restore replaces the pseudonyms this node issued to peer with the original
// values, so the local agent never sees a token. Tokens issued to other peers,
// and token-shaped text it never issued, are left alone. In a valid JSON
// document values are re-escaped for the string they land in (a bare number
// that fills a whole string is restored as a number), so the output stays
// valid JSON. Tokens escaped as \u003c...\u003e are recognised too.
func (s *Sanitizer) Restore(peer string, data []byte) []byte {
	if bytes.IndexByte(data, '<') < 0 && !containsFold(data, `\u003c`) {
		return bytes.Clone(data)
	}
	isJSON := validJSON(data, nil)
	var out bytes.Buffer
	pos := 0
	for i := 0; i < len(data); i++ {
		open := 0
		switch {
		case data[i] == '<':
			open = 1
		case data[i] == '\\' && hasPrefixFold(data, i, `\u003c`):
			open = 6
		default:
			continue
		}
		tokEnd, name, ok := parseToken(data, i+open)
		if !ok {
			continue
		}
		closeLen := 1
		if data[tokEnd] != '>' {
			closeLen = 6
		}
		tok := "<" + name + ">"
		e, found := s.vault.lookup(peer, tok)
		if !found {
			continue
		}
		start, end := i, tokEnd+closeLen
		var val []byte
		switch {
		case !isJSON:
			val = e.Value
		case e.Num && start > 0 && data[start-1] == '"' && end < len(data) && data[end] == '"':
			start, end = start-1, end+1
			val = e.Value
		default:
			val = escapeJSON(e.Value)
		}
		out.Write(data[pos:start])
		out.Write(val)
		pos = end
		i = end - 1
	}
	if pos == 0 {
		return bytes.Clone(data)
	}
	out.Write(data[pos:])
	return out.Bytes()
}

// parseToken reads "category:hex" at p, followed by '>' or \u003e. It returns
// the index of the closer and "category:hex".
func parseToken(d []byte, p int) (int, string, bool) {
	k := p
	for k < len(d) && k-p < 32 && (isLower(d[k]) || isDigit(d[k]) || d[k] == '_') {
		k++
	}
	if k == p || k >= len(d) || d[k] != ':' {
		return 0, "", false
	}
	h := k + 1
	for h < len(d) && h-k <= 33 && (isDigit(d[h]) || ('a' <= d[h] && d[h] <= 'f')) {
		h++
	}
	if l := h - k - 1; l != 12 && l != 32 {
		return 0, "", false
	}
	if h < len(d) && d[h] == '>' {
		return h, string(d[p:h]), true
	}
	if hasPrefixFold(d, h, `\u003e`) {
		return h, string(d[p:h]), true
	}
	return 0, "", false
}
