package config

import (
	"strings"
	"testing"
)

func TestAuditSpaceKeys(t *testing.T) {
	base := "name: a\naudit:\n"
	c, err := Parse([]byte(base + "  max_bytes: 1073741824\n  min_free_bytes: -1\n  row_retention: 720h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit.MaxBytes != 1<<30 || c.Audit.MinFreeBytes != -1 || c.Audit.RowRetention.D().Hours() != 720 {
		t.Fatalf("%+v", c.Audit)
	}
	for _, tc := range []struct{ yaml, field string }{
		{"  max_bytes: 1000\n", "audit.max_bytes"},
		{"  max_bytes: -5\n", "audit.max_bytes"},
		{"  min_free_bytes: -2\n", "audit.min_free_bytes"},
		{"  row_retention: 5m\n", "audit.row_retention"},
	} {
		if _, err := Parse([]byte(base + tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%q: %v, want an error naming %s", tc.yaml, err, tc.field)
		}
	}
}
