package binary

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// planter generates messages full of planted secrets and PII, each a fresh
// random value in its real format, and remembers every value it planted.
type planter struct {
	rng    *rand.Rand
	values []string
}

func newPlanter(seed uint64) *planter {
	return &planter{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (p *planter) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + p.rng.IntN(10)))
	}
	return b.String()
}

func (p *planter) alnum(n int) string {
	const a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = a[p.rng.IntN(len(a))]
	}
	return string(b)
}

func (p *planter) upperDigits(n int) string {
	const a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	for i := range b {
		b[i] = a[p.rng.IntN(len(a))]
	}
	return string(b)
}

// luhn completes a number with its Luhn check digit.
func luhn(s string) string {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return s + string(byte('0'+(10-sum%10)%10))
}

// iban builds a German IBAN with valid mod-97 check digits.
func iban(bban string) string {
	// Move "DE00" to the end, letters to numbers (D=13, E=14), mod 97.
	num := bban + "131400"
	rem := 0
	for _, c := range num {
		rem = (rem*10 + int(c-'0')) % 97
	}
	return fmt.Sprintf("DE%02d%s", 98-rem, bban)
}

func (p *planter) plant(v string) string {
	p.values = append(p.values, v)
	return v
}

// message returns one JSON call input with several planted values.
func (p *planter) message(i int) []byte {
	email := p.plant(fmt.Sprintf("%s.%s@%s.example.com", strings.ToLower(p.alnum(6)), strings.ToLower(p.alnum(5)), strings.ToLower(p.alnum(4))))
	card := p.plant(luhn("4" + p.digits(14)))
	ib := p.plant(iban(p.digits(18)))
	ssn := p.plant(fmt.Sprintf("%03d-%02d-%04d", 100+p.rng.IntN(565), 1+p.rng.IntN(98), 1+p.rng.IntN(9998)))
	msg := map[string]any{
		"id":     i,
		"ticket": fmt.Sprintf("Customer %s paid with card %s; refund to %s. SSN on file: %s.", email, card, ib, ssn),
	}
	switch i % 6 { // one secret per message, rotating through formats
	case 0:
		msg["config"] = "aws_access_key_id = " + p.plant("AKIA"+p.upperDigits(16))
	case 1:
		msg["token"] = p.plant("ghp_" + p.alnum(36))
	case 2:
		msg["db"] = "postgres://app:" + p.plant(p.alnum(14)+"9x") + "@db.internal:5432/app"
	case 3:
		msg["password"] = p.plant("Pw" + p.alnum(12) + "!7")
	case 4:
		msg["slack"] = p.plant("xoxb-" + p.digits(12) + "-" + p.digits(12) + "-" + p.alnum(24))
	case 5:
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
		body := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"%s","iat":%d}`, p.alnum(8), 1700000000+i)))
		msg["auth"] = "Bearer " + p.plant(hdr+"."+body+"."+p.alnum(43))
	}
	b, _ := json.Marshal(msg)
	return b
}
