package sanitize

import "bytes"

// cliAuthTools are commands that take a password in a flag of their own:
// curl -u user:pw (also --user, -U, --proxy-user), sshpass -p pw.
var cliAuthTools = []string{"curl", "sshpass"}

// cliAuthHit runs at a cliAuthTools name at p (length l) and reads the rest
// of its command line (up to 512 bytes) for the password flag: curl's
// user:password after -u, --user, -U or --proxy-user (as the next word,
// after = or glued to the short flag), sshpass's word after -p.
func (sc *scanner) cliAuthHit(p, l int) {
	d := sc.data
	if p > 0 && isIdent(d[p-1]) || wordAfter(d, p+l) {
		return
	}
	curl := lowerASCII(d[p]) == 'c'
	tool := 0
	if curl {
		tool = 1
	}
	if p < sc.cliDone[tool] {
		return // inside a command line of the same tool already read
	}
	end := p + l
	for end < len(d) && end-p < 512 && d[end] != '\n' {
		end++
	}
	sc.cliDone[tool] = end
	for k := p + l; k < end; {
		for k < end && (d[k] == ' ' || d[k] == '\t') {
			k++
		}
		ws := k
		for k < end && d[k] != ' ' && d[k] != '\t' {
			k++
		}
		w := d[ws:k]
		vs := -1
		switch {
		case curl && (bytes.Equal(w, []byte("-u")) || bytes.Equal(w, []byte("--user")) || bytes.Equal(w, []byte("-U")) || bytes.Equal(w, []byte("--proxy-user"))),
			!curl && bytes.Equal(w, []byte("-p")):
			vs = k
			for vs < end && (d[vs] == ' ' || d[vs] == '\t') {
				vs++
			}
		case curl && (bytes.HasPrefix(w, []byte("--user=")) || bytes.HasPrefix(w, []byte("--proxy-user="))):
			vs = ws + bytes.IndexByte(w, '=') + 1
		case len(w) > 2 && w[0] == '-' && (curl && (w[1] == 'u' || w[1] == 'U') || !curl && w[1] == 'p'):
			vs = ws + 2
		}
		if vs < 0 || vs >= end {
			continue
		}
		k = sc.cliAuthValue(vs, end, curl)
	}
}

// cliAuthValue reads the flag's value at vs (quoted or a word) and reports
// its password: after the first ':' for curl, all of it for sshpass. It
// returns where the value ends.
func (sc *scanner) cliAuthValue(vs, end int, userColon bool) int {
	d := sc.data
	var q byte
	if d[vs] == '\'' || d[vs] == '"' {
		q = d[vs]
		vs++
	}
	e := vs
	for e < end && (q != 0 && d[e] != q || q == 0 && d[e] != ' ' && d[e] != '\t') {
		e++
	}
	if q != 0 && (e >= end || d[e] != q) {
		return e
	}
	if userColon {
		c := bytes.IndexByte(d[vs:e], ':')
		if c < 0 {
			return e // a user alone: curl prompts for the password
		}
		vs += c + 1
	}
	if v := d[vs:e]; acceptPassword(v) {
		sc.add(vs, e, CategoryPasswordAssignment, "password-cli-flag")
	}
	return e
}

// sqlPasswordWords start the SQL forms that give a password as a string
// literal: CREATE/ALTER USER|ROLE ... [WITH] PASSWORD 'pw', IDENTIFIED BY
// 'pw', SET PASSWORD [FOR u] = 'pw'.
var sqlPasswordWords = []string{"password '", "password \"", "identified by", "set password"}

// sqlHit runs at a sqlPasswordWords literal at p (length l) and reports the
// string literal it assigns. "password '...'" counts only in a statement
// about a user or a role, so prose that quotes a word after "password" does
// not.
func (sc *scanner) sqlHit(p, l int) {
	d := sc.data
	if p > 0 && isIdent(d[p-1]) {
		return
	}
	k := p + l
	switch lowerASCII(d[p]) {
	case 'p':
		ls := max(0, p-256)
		if nl := bytes.LastIndexByte(d[ls:p], '\n'); nl >= 0 {
			ls += nl + 1
		}
		stmt := d[ls:p]
		if indexFold(stmt, "user ") < 0 && indexFold(stmt, "role ") < 0 {
			return
		}
		k-- // at the quote
	case 's':
		// SET PASSWORD [FOR 'u'@'h'] = 'pw': the = on this line.
		if p < sc.sqlDone {
			return
		}
		defer func() { sc.sqlDone = k }()
		for k < len(d) && k-p < 256 && d[k] != '=' && d[k] != '\n' && d[k] != ';' {
			k++
		}
		if k >= len(d) || d[k] != '=' {
			return
		}
		k++
	}
	for k < len(d) && (d[k] == ' ' || d[k] == '\t') {
		k++
	}
	if k >= len(d) || d[k] != '\'' && d[k] != '"' {
		return
	}
	q := d[k]
	vs := k + 1
	e := vs
	for e < len(d) && e-vs <= 200 && d[e] != q && d[e] != '\n' {
		e++
	}
	if e >= len(d) || d[e] != q {
		return
	}
	if v := d[vs:e]; acceptPassword(v) {
		sc.add(vs, e, CategoryPasswordAssignment, "password-sql")
	}
}
