package jsonenc

import (
	"encoding/json"
	"testing"
)

func TestAppendStringIsMarshal(t *testing.T) {
	for _, s := range []string{"", "did:key:z6Mk", "a\"b", `back\slash`, "<tag>&", "tab\there", "é", "\u2028", "\x7f", "\xff"} {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, json.Marshal gives %s", s, got[1:], want)
		}
	}
}

func FuzzAppendStringIsMarshal(f *testing.F) {
	f.Add("plain")
	f.Add("<\"\\\x00é")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal gives %s", s, got, want)
		}
	})
}
