package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
)

// leakForms are the ways fmt could spell the seed of k: hex either case,
// base64, the decimal byte list of %v on a slice, and the escaped string of %q.
func leakForms(t *testing.T, seed []byte) []string {
	t.Helper()
	dec := strings.Trim(fmt.Sprint(seed[:6]), "[]")
	return []string{
		hex.EncodeToString(seed[:6]),
		strings.ToUpper(hex.EncodeToString(seed[:6])),
		base64.StdEncoding.EncodeToString(seed)[:8],
		dec,
		strings.ReplaceAll(dec, " ", ","),
		strings.Trim(strconv.Quote(string(seed[:6])), `"`),
	}
}

// distinctSeed makes every byte of the seed different, so that its decimal
// and hex forms cannot appear by chance.
func distinctSeed() []byte {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(101 + 5*i)
	}
	return seed
}

func TestPrivateKeyFormatRedacts(t *testing.T) {
	t.Parallel()
	seed := distinctSeed()
	k, err := FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	type exported struct{ Key PrivateKey }
	type unexported struct{ key PrivateKey }
	values := map[string]any{
		"value":            k,
		"pointer":          &k,
		"exported field":   exported{k},
		"unexported field": unexported{k},
		"pointer to field": &unexported{k},
		"slice":            []PrivateKey{k},
		"map":              map[string]PrivateKey{"k": k},
	}
	forms := leakForms(t, seed)
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d", "%10.3v", "%T"} {
			out := fmt.Sprintf(verb, v)
			for _, leak := range forms {
				if strings.Contains(out, leak) {
					t.Errorf("%s %s printed %q, which contains %q", name, verb, out, leak)
				}
			}
		}
		for _, out := range []string{fmt.Sprint(v), fmt.Sprintln(v)} {
			for _, leak := range forms {
				if strings.Contains(out, leak) {
					t.Errorf("%s Sprint printed %q", name, out)
				}
			}
		}
	}
	// The key itself says what it is.
	if got := fmt.Sprintf("%v %s %x %q", k, k, k, k); got != "[redacted] [redacted] [redacted] [redacted]" {
		t.Errorf("verbs print %q", got)
	}
	if got := fmt.Sprintf("%#v", k); got != "identity.PrivateKey{[redacted]}" || k.GoString() != got {
		t.Errorf("%%#v prints %q", got)
	}
	// The seed forms are real: the same test on the raw bytes finds them.
	if out := fmt.Sprintf("%v %x", seed, seed); !strings.Contains(out, forms[0]) || !strings.Contains(out, forms[3]) {
		t.Fatalf("leak forms %q not found in the raw seed's output %q", forms, out)
	}
}

func TestPrivateKeySlogRedacts(t *testing.T) {
	t.Parallel()
	seed := distinctSeed()
	k, err := FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "key", k, "ptr", &k, slog.Group("g", "key", k))
	log.With("key", k).Info("y")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log = %q", buf.String())
	}
	var rec struct {
		Key string            `json:"key"`
		Ptr string            `json:"ptr"`
		G   map[string]string `json:"g"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Key != "[redacted]" || rec.Ptr != "[redacted]" || rec.G["key"] != "[redacted]" {
		t.Fatalf("slog JSON = %s", lines[0])
	}
	for _, leak := range leakForms(t, seed) {
		if strings.Contains(buf.String(), leak) {
			t.Fatalf("slog output %q contains %q", buf.String(), leak)
		}
	}
}

// The zero key prints the same way and behaves as before.
func TestZeroPrivateKey(t *testing.T) {
	t.Parallel()
	var k PrivateKey
	if !k.IsZero() || fmt.Sprint(k) != "[redacted]" || !k.Public().IsZero() {
		t.Fatalf("zero key: IsZero %v, prints %q", k.IsZero(), fmt.Sprint(k))
	}
	if _, err := k.DeriveKey("x"); err == nil {
		t.Fatal("DeriveKey on the zero key")
	}
}
