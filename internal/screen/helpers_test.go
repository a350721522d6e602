package screen

import (
	"encoding/base64"
	"encoding/hex"
	"testing"
)

func b64Of(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }

func mustBase64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
