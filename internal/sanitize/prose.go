package sanitize

import "strings"

// passwordNouns name a password in prose, in the languages agents write in:
// "la contraseña es: …", "пароль: …", "密码是 …", "das Passwort lautet …".
// English and ASCII spellings also reach keyHit through "pass"; this path adds
// the sentence forms keyHit does not parse (a verb other than "is").
var passwordNouns = []string{
	"password", "passwort", "kennwort", "wachtwoord", "contraseña", "contrasena", "senha",
	"mot de passe", "parola d'accesso", "hasło", "haslo", "şifre", "sifre", "parola",
	"kata sandi", "mật khẩu", "mat khau", "пароль", "Пароль", "ПАРОЛЬ", "密码", "密碼", "口令",
	"パスワード", "暗証番号", "비밀번호", "암호", "كلمة المرور", "كلمة السر", "पासवर्ड",
	"পাসওয়ার্ড", "پاس ورڈ", "پاسورڈ", "סיסמה", "รหัสผ่าน", "lösenord", "adgangskode", "salasana",
}

// proseHit runs at a password noun at p (length l): up to two short linking
// words ("es", "lautet", "是", "هي"), an optional ':' '：' or '=', then the
// value, the next run without spaces. With a separator the value needs only
// to pass acceptPassword; without one it must follow a linking word and mix
// letters and digits, so "la contraseña cambió ayer" is not a finding.
func (sc *scanner) proseHit(p, l int) {
	d := sc.data
	n := len(d)
	ascii := d[p] < 0x80
	if p > 0 && (ascii && isAlnum(d[p-1]) || strings.IndexByte(":/@.=_-", d[p-1]) >= 0) {
		return // inside a word, a URL or an identifier
	}
	k := p + l
	skipSpace := func() {
		for k < n && (d[k] == ' ' || d[k] == '\t') {
			k++
		}
	}
	sep, linked := false, false
	sepAt := func() bool {
		switch {
		case k < n && (d[k] == ':' || d[k] == '='):
			k++
			return true
		case k+2 < n && d[k] == 0xEF && d[k+1] == 0xBC && d[k+2] == 0x9A: // ：
			k += 3
			return true
		}
		return false
	}
	for w := 0; w < 3 && k < n; w++ {
		skipSpace()
		if sepAt() {
			sep = true
			break
		}
		if w == 2 {
			break
		}
		// A linking word: letters only, short, on this line.
		e := k
		for e < n && e-k <= 12 && (isLetter(d[e]) || d[e] >= 0x80) &&
			!(e+2 < n && d[e] == 0xEF && d[e+1] == 0xBC && d[e+2] == 0x9A) {
			e++
		}
		if e == k || e-k > 12 || (e < n && isDigit(d[e])) {
			break
		}
		if e < n && (d[e] == ':' || d[e] == '=' || d[e] == 0xEF) {
			k = e
			continue
		}
		if e < n && d[e] != ' ' && d[e] != '\t' {
			break
		}
		k = e
		linked = true
	}
	skipSpace()
	vs := k
	for k < n && k-vs <= 200 && !isSpace(d[k]) && d[k] != '"' && d[k] != '\'' && d[k] != '<' && d[k] != '`' &&
		d[k] != '\\' && !(d[k] == '&' && queryParamAt(d, k+1)) {
		k++
	}
	ve := k
	for ve > vs && (d[ve-1] == '.' || d[ve-1] == ',' || d[ve-1] == ';' || d[ve-1] == ')') {
		ve--
	}
	v := d[vs:ve]
	if len(v) < 6 || !acceptPassword(v) {
		return
	}
	if !sep && (!linked || !hasDigitAndLetter(v)) {
		return
	}
	sc.add(vs, ve, CategoryPasswordAssignment, "password-prose")
}

// mysqlHit runs at "mysql" (mysql, mysqldump, mysqladmin): the MySQL clients
// take the password glued to a short flag, -pSECRET or -p'SECRET', which no
// key=value form covers. It reads the rest of the command line (up to 512
// bytes) for such a flag.
func (sc *scanner) mysqlHit(p, l int) {
	d := sc.data
	n := len(d)
	for k := p + l; k+2 < n && k-p < 512 && d[k] != '\n'; k++ {
		if !(d[k] == '-' && d[k+1] == 'p' && (d[k-1] == ' ' || d[k-1] == '\t')) {
			continue
		}
		vs := k + 2
		var q byte
		if vs < n && (d[vs] == '\'' || d[vs] == '"') {
			q = d[vs]
			vs++
		}
		e := vs
		for e < n && e-vs <= 200 && d[e] != '\n' && (q != 0 && d[e] != q || q == 0 && !isSpace(d[e])) {
			e++
		}
		if q != 0 && (e >= n || d[e] != q) {
			return
		}
		if v := d[vs:e]; len(v) >= 4 && acceptPassword(v) {
			sc.add(vs, e, CategoryPasswordAssignment, "password-mysql-flag")
		}
		return
	}
}
