package trust

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The treaty.yaml shape: internal/config decodes with KnownFields; every field here
// must decode, and a typo must not.
func TestConfigYAML(t *testing.T) {
	t.Parallel()
	src := `
prior: 0.4
prior_weight: 20
half_life: 12h
weights: {success: 2, denied: -4}
severe: {equivocation: false, replay: true}
levels: {provisional: 0.3, trusted: 0.6, high: 0.8, hysteresis: 0.05}
flush_every: 500ms
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Prior != 0.4 || c.PriorWeight != 20 || c.HalfLife != 12*time.Hour || c.Weight(KindSuccess) != 2 ||
		c.Weight(KindDenied) != -4 || c.Weight(KindFailure) != -1 || c.IsSevere(KindEquivocation) || !c.IsSevere(KindReplay) ||
		!c.IsSevere(KindBadSignature) || c.Levels != (Thresholds{0.3, 0.6, 0.8, 0.05}) || c.FlushEvery != 500*time.Millisecond {
		t.Fatalf("decoded %+v", c)
	}
	for _, bad := range []string{"prio: 0.5", "levels: {hi: 0.9}", "half_life: soon"} {
		dec := yaml.NewDecoder(strings.NewReader(bad))
		dec.KnownFields(true)
		var c Config
		if err := dec.Decode(&c); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	// Unknown kinds decode (the map is open) but Validate refuses them.
	var c2 Config
	if err := yaml.Unmarshal([]byte("weights: {sucess: 1}"), &c2); err != nil {
		t.Fatal(err)
	}
	if err := c2.Validate(); err == nil {
		t.Fatal("Validate accepted a misspelt kind")
	}
}

// Config.Levels moves the thresholds: the same score is a different level.
func TestLevelsConfigurable(t *testing.T) {
	t.Parallel()
	s := observeN(Config{}, State{}, KindSuccess, 6, t0) // 11/16 = 0.6875
	if l := s.Level(Config{}, t0); l != LevelTrusted {
		t.Fatalf("default levels: %v", l)
	}
	strict := Config{Levels: Thresholds{Provisional: 0.5, Trusted: 0.8, High: 0.9, Hysteresis: 0.02}}
	if err := strict.Validate(); err != nil {
		t.Fatal(err)
	}
	if l := s.Level(strict, t0); l != LevelProvisional {
		t.Fatalf("strict levels: %v", l)
	}
}
