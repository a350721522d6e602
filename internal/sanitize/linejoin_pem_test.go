package sanitize

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// scanLineJoinsRef is scanLineJoins as it was before it looked for the next
// PEM header once instead of at every break: the reference it must agree with.
func (sc *scanner) scanLineJoinsRef() {
	d := sc.data
	var brks []lineBreak
	ws, we := -1, -1
	pemEnd := -1 // inside a PEM block up to here: the PEM detector reads those lines
	noEnd := false
	for i := 0; i < len(d); i++ {
		if d[i] != '\n' && d[i] != '\\' {
			continue
		}
		if i > pemEnd && !noEnd {
			if k := bytes.Index(d[i:min(len(d), i+16)], []byte("-----BEGIN ")); k >= 0 {
				if e := bytes.Index(d[i+k:], []byte("-----END ")); e >= 0 {
					pemEnd = i + k + e
				} else {
					noEnd = true // and none after a later BEGIN either
				}
			}
		}
		if i < pemEnd {
			continue
		}
		b, ok := breakAt(d, i)
		if !ok {
			continue
		}
		i = b.e - 1
		// A finding that begins after the break, or a specific format that
		// ends before it, is a value whole on its line; a join would only
		// glue a neighbour onto it.
		if !joinable(d, b) || sc.covered(b.e, b.e+1) || sc.coveredBy(b.s-1, b.s, CategoryAWSSecretKey) {
			continue
		}
		s, e := widen(d, max(0, b.s-joinReach), min(len(d), b.e+joinReach))
		if we >= 0 && s > we {
			sc.joinWindow(ws, we, brks)
			if sc.halted() {
				return
			}
			brks = brks[:0]
			ws = -1
		}
		if ws < 0 {
			ws = s
		}
		we = e
		brks = append(brks, b)
	}
	if len(brks) > 0 {
		sc.joinWindow(ws, we, brks)
	}
}

// TestLineJoinsPEMLookAhead checks scanLineJoins against the reference on
// texts with PEM headers at every distance from the breaks before them.
func TestLineJoinsPEMLookAhead(t *testing.T) {
	s := newTest(t)
	r := rand.New(rand.NewPCG(5, 6))
	body := "MIIEowIBAAKCAQEA7v1kZ3Q9m2Yx8wq4N5a0\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n"
	parts := []string{"card 4111 1111\n1111 1111 ", "ab", " ", "\n", "\n", "x9\n  7y", "-----BEGIN RSA PRIVATE KEY-----\n" + body,
		"-----END RSA PRIVATE KEY-----", "-----BEGIN ", "token ghp_aB3dE5gH7jK9\nmN1pQ3rS5tU7vW9xY1zA3bC5dE7f "}
	for iter := 0; iter < 400; iter++ {
		var b strings.Builder
		for range 1 + r.IntN(14) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		d := []byte(b.String())
		run := func(f func(*scanner)) string {
			sc := &scanner{s: s, data: d, lastKS: -1, lastKE: -1}
			f(sc)
			return fmt.Sprint(sc.hits)
		}
		got := run(func(sc *scanner) { sc.scanLineJoins() })
		want := run(func(sc *scanner) { sc.scanLineJoinsRef() })
		if got != want {
			t.Fatalf("%q: %s, reference %s", d, got, want)
		}
	}
}
