package wire

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// fuzzReceipt is the one genuine receipt the receipt fuzz target knows:
// alice's request to bob, answered 200.
func fuzzReceipt(t testing.TB) Receipt {
	k := testKeys(t)
	sent, resp := served(t, k, 200, respBody)
	rc, err := VerifyResponse(resp, respBody, sent, k.bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// receiptSeeds are receipts as JSON, one comment per edge case.
func receiptSeeds(t testing.TB) []string {
	k := testKeys(t)
	rc := fuzzReceipt(t)
	enc := func(edit func(*Receipt)) string {
		r := rc
		edit(&r)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	lines := strings.Split(rc.RequestBase, "\n")
	return []string{
		enc(func(*Receipt) {}), // genuine
		enc(func(r *Receipt) { r.RequestBase = "fsm/1 \x00 prefix\n" + r.RequestBase }), // foreign prefix
		enc(func(r *Receipt) {
			r.RequestBase = strings.Join(slices.Insert(slices.Clone(lines), 1, `"x-note": 1`), "\n")
		}), // extra line
		enc(func(r *Receipt) {
			r.RequestBase = strings.Replace(r.RequestBase, `"treaty-audience": `, `"treaty-audience":`, 1)
		}), // no space
		enc(func(r *Receipt) { r.RequestBase = strings.TrimPrefix(r.RequestBase, lines[0]+"\n") }),          // line dropped
		enc(func(r *Receipt) { r.Callee = k.mallory.Public().String() }),                                    // callee swapped
		enc(func(r *Receipt) { r.RequestSignature = NoRequestSignature }),                                   // unbound
		enc(func(r *Receipt) { r.SignatureInput = strings.Replace(r.SignatureInput, `"@status" `, ``, 1) }), // status not covered
		enc(func(r *Receipt) { r.ContentDigest = "sha-512=:AA==:" }),                                        // short digest
		`{}`, `null`, `{"version":"treaty/1","request_base":"\n\"@signature-params\": ()"}`,
	}
}

// FuzzReceiptVerify: Receipt.Verify, which third parties run on receipts
// they were handed, never panics, refuses with typed errors, and accepts
// only the genuine receipt (nothing else here is signed by alice and bob).
func FuzzReceiptVerify(f *testing.F) {
	for _, s := range receiptSeeds(f) {
		f.Add([]byte(s))
	}
	genuine := fuzzReceipt(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Receipt
		if json.Unmarshal(b, &r) != nil {
			return
		}
		err := r.Verify()
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if r != genuine {
			t.Fatalf("verified a receipt that is not the genuine one: %+v", r)
		}
	})
}
