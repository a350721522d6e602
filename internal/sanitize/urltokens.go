package sanitize

import "bytes"

// sasSigHit runs at "sig=" (p) and reports the signature of an Azure shared
// access signature URL: the sig parameter of a query that also has sv= (the
// service version every SAS carries). The signature alone grants what the
// URL's permissions say until it expires.
func (sc *scanner) sasSigHit(p int) {
	d := sc.data
	if p < sc.sasDone {
		return // inside the query just read
	}
	if p == 0 || d[p-1] != '?' && d[p-1] != '&' && !(p >= 5 && bytes.Equal(d[p-5:p], []byte("&amp;"))) {
		return
	}
	urlByte := func(c byte) bool { return !isSpace(c) && c != '"' && c != '\'' && c != '<' && c != '>' }
	// The query around it: back to its '?' and forward to its end, within
	// the URL and 1 KiB each way; hits inside a query read are skipped, so
	// each byte is read a bounded number of times.
	qs := p - 1
	for qs >= 0 && p-qs <= 1024 && urlByte(d[qs]) && d[qs] != '?' {
		qs--
	}
	if qs < 0 || d[qs] != '?' {
		return
	}
	vs := p + 4
	ve := vs
	for ve < len(d) && ve-vs < 256 && (isAlnum(d[ve]) || d[ve] == '%' || d[ve] == '+' || d[ve] == '/' || d[ve] == '=') {
		ve++
	}
	qe := ve
	for qe < len(d) && qe-ve < 1024 && urlByte(d[qe]) {
		qe++
	}
	sc.sasDone = qe
	if !bytes.Contains(d[qs:qe], []byte("sv=")) || ve-vs < 16 {
		return
	}
	if v := d[vs:ve]; !placeholder(v) {
		sc.add(vs, ve, CategorySecret, "azure-sas-signature")
	}
}

// discordHookHit runs at "/api/webhooks/" (p, length l) and reports the
// token of a Discord webhook URL (discord.com, discordapp.com, their canary
// and ptb hosts): /api/webhooks/ID/TOKEN, where the token lets anyone post.
func (sc *scanner) discordHookHit(p, l int) {
	d := sc.data
	hs := max(0, p-40)
	if !bytes.Contains(d[hs:p], []byte("discord")) {
		return
	}
	k := p + l
	ids := k
	for k < len(d) && isDigit(d[k]) {
		k++
	}
	if k-ids < 16 || k >= len(d) || d[k] != '/' {
		return
	}
	vs := k + 1
	ve := vs
	for ve < len(d) && ve-vs < 100 && (isAlnum(d[ve]) || d[ve] == '-' || d[ve] == '_') {
		ve++
	}
	if ve-vs >= 50 && !placeholder(d[vs:ve]) {
		sc.add(vs, ve, CategorySecret, "discord-webhook-token")
	}
}
