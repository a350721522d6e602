package sanitize

import (
	"bytes"
	"math/rand"
	"testing"
)

// The canary filter never hides an occurrence: wherever the matcher finds a
// form (any canary, any form, any case, at any offset, cut or whole), the
// filter lets the data through. Short canaries make the densest sampling
// (stride 5), long ones the sparsest.
func TestCanaryFilterMissesNothing(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	key := make([]byte, 64)
	rng.Read(key)
	for _, values := range [][][]byte{
		{[]byte("hunter22")},
		{key[:32], key, []byte("TREATY-ED25519-PRIVATE-KEY c2VlZHNlZWRzZWVkc2VlZHNlZWRzZWVkc2VlZHNlZWQ=")},
		{[]byte("operator-canary-9f3e"), key[:32]},
	} {
		ci, err := newCanaryIndex(values)
		if err != nil {
			t.Fatal(err)
		}
		found, plain, passed := 0, 0, 0
		for i := range 20000 {
			n := rng.Intn(300)
			d := make([]byte, n)
			const alphabet = "abcXYZ019 %\\u\"=+/-_"
			for k := range d {
				d[k] = alphabet[rng.Intn(len(alphabet))]
			}
			if i%2 == 0 {
				f := []byte(ci.forms[rng.Intn(len(ci.forms))])
				if rng.Intn(3) == 0 {
					f = bytes.ToUpper(f)
				}
				if rng.Intn(4) == 0 && len(f) > 2 { // a cut form: no match, filter may say either
					f = f[:rng.Intn(len(f))]
				}
				at := rng.Intn(n + 1)
				d = append(d[:at], append(f, d[at:]...)...)
			}
			hits := len(ci.ac.hits(d, nil)) > 0
			may := ci.mayHold(d)
			if hits && !may {
				t.Fatalf("filter hid a canary form in %q (stride %d)", d, ci.stride)
			}
			if hits {
				found++
			}
			if i%2 == 1 {
				plain++
				if may {
					passed++
				}
			}
		}
		if found == 0 {
			t.Fatal("no canary placed: the test proves nothing")
		}
		if passed > plain/20 {
			t.Errorf("filter let %d of %d inputs without a canary through: it filters little", passed, plain)
		}
	}
}
