package sanitize

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// planted is a value put into a generated message, with the text around it.
type planted struct {
	value string // must not appear in the output
	text  string // value in context, e.g. "password=" + value
}

// plant draws one value of a random kind. Random parts come from a seed drawn
// by rapid and expanded by fake, so shrinking cannot turn a token into a
// placeholder like AAAA….
func plant(t *rapid.T) planted {
	seed := rapid.Uint64().Draw(t, "seed")
	f := func(alphabet string, n int) string { return fake(seed, alphabet, n) }
	digits := func(n int) string { return f("0123456789", n) }
	kind := rapid.IntRange(0, 21).Draw(t, "kind")
	switch kind {
	case 0:
		v := strings.ToLower(f("abcdefghijklmnopqrstuvwxyz", 6)) + "." + strings.ToLower(f("abcdefghij", 4)) + "@" +
			rapid.SampledFrom([]string{"example.com", "initech.io", "globex.test", "umbrella-corp.org"}).Draw(t, "domain")
		return planted{v, v}
	case 1:
		v := rapid.SampledFrom([]string{"+44", "+49", "+33", "+1"}).Draw(t, "cc") + rapid.SampledFrom([]string{"", " ", "-"}).Draw(t, "sep")
		v += "7" + digits(9)
		return planted{v, "call " + v}
	case 2:
		v := fmt.Sprintf("%d%s-%s-%s", 2+seed%8, digits(2), "5"+digits(2), digits(4))
		return planted{v, "phone: " + v}
	case 3:
		prefix := rapid.SampledFrom([]string{"4", "51", "55", "2221", "34", "37", "6011", "65"}).Draw(t, "brand")
		n := 16
		if prefix == "34" || prefix == "37" {
			n = 15
		}
		v := luhnComplete(prefix + digits(n-len(prefix)-1))
		if rapid.Bool().Draw(t, "grouped") && n == 16 {
			v = group4(v)
		}
		return planted{v, "card " + v}
	case 4:
		c := rapid.SampledFrom([]string{"DE", "FR", "GB", "NL", "ES"}).Draw(t, "country")
		bban := map[string]string{"DE": digits(18), "FR": digits(23), "GB": "NWBK" + digits(14), "NL": "ABNA" + digits(10), "ES": digits(20)}[c]
		v := ibanFor(c, bban)
		if rapid.Bool().Draw(t, "grouped") {
			v = group4(v)
		}
		return planted{v, "IBAN: " + v}
	case 5:
		v := fmt.Sprintf("%03d-%02d-%04d", 1+seed%665, 1+seed%99, 1+seed%9999)
		return planted{v, "SSN " + v}
	case 6:
		v := fmt.Sprintf("%d.%d.%d.%d", 1+seed%223, seed>>8%256, seed>>16%256, 1+seed>>24%254)
		return planted{v, "from " + v}
	case 7:
		v := fmt.Sprintf("2001:db8:%x::%x", 1+seed%0xfffe, 1+seed>>16%0xfffe)
		return planted{v, "addr " + v}
	case 8:
		v := "AKIA" + f(upperNum, 16)
		return planted{v, "key " + v}
	case 9:
		v := "ghp_" + f(alnum, 36)
		return planted{v, "token " + v}
	case 10:
		v := "glpat-" + f(b64url, 20)
		return planted{v, v}
	case 11:
		v := "xoxb-" + digits(12) + "-" + digits(11) + "-" + f(alnum, 24)
		return planted{v, v}
	case 12:
		v := "sk_live_" + f(alnum, 24)
		return planted{v, v}
	case 13:
		v := "sk-ant-api03-" + f(b64url, 93) + "AA"
		return planted{v, v}
	case 14:
		v := "AIza" + f(b64url, 35)
		return planted{v, v}
	case 15:
		v := "npm_" + f(alnum, 36)
		return planted{v, v}
	case 16:
		v := "SG." + f(b64url, 22) + "." + f(b64url, 43)
		return planted{v, v}
	case 17:
		v := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + f(b64url, 60) + "." + f(b64url, 43)
		return planted{v, "Bearer " + v}
	case 18:
		v := rapid.SampledFrom([]string{"Orchid", "Cobalt", "Lantern", "Quartz"}).Draw(t, "word") + digits(3) + rapid.SampledFrom([]string{"!", "#", "_", "."}).Draw(t, "sym")
		key := rapid.SampledFrom([]string{"password=", "DB_PASSWORD: ", `"passwd": "`, "--password "}).Draw(t, "key")
		return planted{v, key + v}
	case 19:
		v := f(alnum+"/+", 20) + "Ab1" + f(alnum, 17)
		return planted{v, "aws_secret_access_key = " + v}
	case 20:
		v := f(alnum, 20)
		return planted{v, "postgres://app:" + v + "@db.internal:5432/app"}
	default:
		v := f(hexLower, 40)
		return planted{v, "api_key: " + v}
	}
}

var fillers = []string{
	"Thanks! Merging once CI is green ✅", "好的，我马上处理。", "Danke, sieht gut aus 👍",
	"build 2024.11.28.1337 is green", "request 5c3e6ba0-cbd3-4459-8cd0-c751aa691923", "version 1.18.19",
	"The dashboard shows a latency spike around lunch.", "Привет, команда.", "مرحبا", "ORD-2024-955605",
	"at 09:56:23", "total $11,577.99", "",
}

// Apply never lets a planted value through, in text or in JSON, and JSON
// stays JSON.
func TestApplyNeverLeaksPlanted(t *testing.T) {
	s := newTest(t)
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(t, "n")
		var ps []planted
		var parts []string
		for i := 0; i < n; i++ {
			p := plant(t)
			ps = append(ps, p)
			parts = append(parts, rapid.SampledFrom(fillers).Draw(t, "filler"), p.text)
		}
		var data []byte
		format := rapid.IntRange(0, 3).Draw(t, "format")
		asJSON := format >= 1
		switch format {
		case 0: // text
			data = []byte(strings.Join(parts, rapid.SampledFrom([]string{" ", "\n", " — ", ". "}).Draw(t, "sep")))
		case 1: // JSON object, one part per field and all parts in one string
			obj := map[string]any{}
			for i, p := range parts {
				obj[fmt.Sprintf("f%d", i)] = p
			}
			obj["all"] = strings.Join(parts, "\n")
			data, _ = json.Marshal(obj)
		case 2: // JSON inside a JSON string (tool-call arguments)
			inner, _ := json.Marshal(map[string]any{"parts": parts})
			data, _ = json.Marshal(map[string]any{"tool": "send", "arguments": string(inner)})
		case 3: // an array of messages
			var msgs []map[string]string
			for _, p := range parts {
				msgs = append(msgs, map[string]string{"role": "agent", "content": p})
			}
			data, _ = json.MarshalIndent(msgs, "", "  ")
		}
		for _, pol := range []Policy{scrub, {Secrets: ActionRedact, PII: ActionRedact}} {
			c, err := s.Apply(peerA, pol, data)
			if err != nil {
				t.Fatal(err)
			}
			out := c.Bytes()
			for _, p := range ps {
				if bytes.Contains(out, []byte(p.value)) {
					t.Fatalf("planted %q survived in\n%s\nfindings %v", p.value, out, found(data, s.Scan(data)))
				}
			}
			if asJSON && !json.Valid(out) {
				t.Fatalf("JSON in, not JSON out:\n%s", out)
			}
		}
		// And the default policy blocks whenever a secret was planted.
		_, err := s.Apply(peerA, DefaultPolicy(), data)
		if hasSecret(s, data) != (err != nil) {
			t.Fatalf("default policy: err %v with findings %v", err, found(data, s.Scan(data)))
		}
	})
}

func hasSecret(s *Sanitizer, data []byte) bool {
	for _, f := range s.Scan(data) {
		if f.Category.Class() == ClassSecret {
			return true
		}
	}
	return false
}
