package config

import (
	"reflect"
	"slices"
)

// StartOnlyChanges names the keys that differ between old and next among those
// a node reads only when it starts, so a reload can say that they wait for a
// restart instead of seeming to apply (a canary added by a reload is not
// enforced until then).
func StartOnlyChanges(old, next *Config) []string {
	var keys []string
	for _, k := range []struct {
		name    string
		changed bool
	}{
		{"listen", old.Listen != next.Listen},
		{"federation_protocol", (old.FederationProtocol == "treaty/1") != (next.FederationProtocol == "treaty/1")},
		{"limits.max_header_bytes", old.Limits.MaxHeaderBytes != next.Limits.MaxHeaderBytes},
		{"audit.max_bytes", old.Audit.MaxBytes != next.Audit.MaxBytes},
		{"audit.min_free_bytes", old.Audit.MinFreeBytes != next.Audit.MinFreeBytes},
		{"audit.witness_interval", old.Audit.WitnessInterval != next.Audit.WitnessInterval},
		{"sanitize.canaries", !slices.Equal(old.Sanitize.Canaries, next.Sanitize.Canaries)},
		{"sanitize.vault", old.Sanitize.Vault != next.Sanitize.Vault},
		{"metrics", old.Metrics != next.Metrics},
		{"membership.enabled", old.Membership.Enabled != next.Membership.Enabled},
		{"membership.org", old.Membership.Org != next.Membership.Org},
		{"relay", !reflect.DeepEqual(old.Relay, next.Relay)},
	} {
		if k.changed {
			keys = append(keys, k.name)
		}
	}
	return keys
}
