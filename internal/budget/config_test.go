package budget

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	p := "did:key:z6MkExample"
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"zero", Config{}, ""},
		{"full", Config{Default: Limit{Rate: 10, Burst: 20, Concurrency: 4, BytesIn: 1 << 20, Window: time.Minute, Cost: 100, CostWindow: time.Hour},
			Rules:   []Rule{{Peer: p, Capability: "c", Dir: In, Limit: Limit{Rate: 1}}, {Peer: "*", Capability: "c", Limit: Limit{Concurrency: 1}}},
			Breaker: BreakerConfig{Window: time.Minute, MinCalls: 10, FailureRatio: 1, Cooldown: 100 * time.Millisecond, Probes: 3}, MaxDepth: 8}, ""},
		{"rate negative", Config{Default: Limit{Rate: -1}}, "Default.Rate"},
		{"rate NaN", Config{Default: Limit{Rate: math.NaN()}}, "Default.Rate"},
		{"rate huge", Config{Default: Limit{Rate: 1e7}}, "Default.Rate"},
		{"burst without rate", Config{Default: Limit{Burst: 3}}, "Default.Burst"},
		{"burst negative", Config{Default: Limit{Rate: 1, Burst: -1}}, "Default.Burst"},
		{"concurrency negative", Config{Default: Limit{Concurrency: -1}}, "Default.Concurrency"},
		{"bytes in negative", Config{Default: Limit{BytesIn: -1}}, "Default.BytesIn"},
		{"bytes out huge", Config{Default: Limit{BytesOut: 1 << 60}}, "Default.BytesOut"},
		{"window short", Config{Default: Limit{BytesIn: 1, Window: time.Millisecond}}, "Default.Window"},
		{"window without bytes", Config{Default: Limit{Window: time.Minute}}, "Default.Window"},
		{"cost Inf", Config{Default: Limit{Cost: math.Inf(1)}}, "Default.Cost"},
		{"cost window long", Config{Default: Limit{Cost: 1, CostWindow: 1000 * time.Hour}}, "Default.CostWindow"},
		{"cost window without cost", Config{Default: Limit{CostWindow: time.Hour}}, "Default.CostWindow"},
		{"rule no peer", Config{Rules: []Rule{{Limit: Limit{Rate: 1}}}}, "Rules[0].Peer"},
		{"rule bad dir", Config{Rules: []Rule{{Peer: p, Dir: 7}}}, "Rules[0].Dir"},
		{"rule long capability", Config{Rules: []Rule{{Peer: p, Capability: strings.Repeat("c", 300)}}}, "Rules[0].Capability"},
		{"rule bad limit", Config{Rules: []Rule{{Peer: p}, {Peer: p, Capability: "c", Limit: Limit{Concurrency: -2}}}}, "Rules[1].Concurrency"},
		{"rule duplicate", Config{Rules: []Rule{{Peer: p, Capability: "c"}, {Peer: p, Capability: "c"}}}, "Rules[1] repeats Config.Rules[0]"},
		{"breaker window", Config{Breaker: BreakerConfig{Window: time.Millisecond}}, "Breaker.Window"},
		{"breaker ratio", Config{Breaker: BreakerConfig{FailureRatio: 1.5}}, "Breaker.FailureRatio"},
		{"breaker min calls", Config{Breaker: BreakerConfig{MinCalls: -1}}, "Breaker.MinCalls"},
		{"breaker cooldown", Config{Breaker: BreakerConfig{Cooldown: 2 * time.Hour}}, "Breaker.Cooldown"},
		{"breaker probes", Config{Breaker: BreakerConfig{Probes: 101}}, "Breaker.Probes"},
		{"max depth", Config{MaxDepth: 100}, "MaxDepth"},
		{"max depth negative", Config{MaxDepth: -1}, "MaxDepth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "Config."+tc.field) {
				t.Fatalf("error %v does not name Config.%s", err, tc.field)
			}
			if _, nerr := New(tc.cfg); nerr == nil {
				t.Fatal("New accepted what Validate refused")
			}
		})
	}
}

// The treaty.yaml shape: internal/config decodes with KnownFields; every field here
// must decode, and a typo must not.
func TestConfigYAML(t *testing.T) {
	t.Parallel()
	src := `
default: {rate: 10, burst: 20, concurrency: 8}
rules:
  - peer: "*"
    capability: summarize
    dir: in
    rate: 0.5
    cost: 100
    cost_window: 1h
  - peer: did:key:z6MkExample
    bytes_in: 1048576
    bytes_out: 2097152
    window: 30s
breaker: {window: 30s, min_calls: 5, failure_ratio: 0.5, cooldown: 10s, probes: 2}
max_depth: 3
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
	want := Config{
		Default: Limit{Rate: 10, Burst: 20, Concurrency: 8},
		Rules: []Rule{
			{Peer: "*", Capability: "summarize", Dir: In, Limit: Limit{Rate: 0.5, Cost: 100, CostWindow: time.Hour}},
			{Peer: "did:key:z6MkExample", Limit: Limit{BytesIn: 1 << 20, BytesOut: 2 << 20, Window: 30 * time.Second}},
		},
		Breaker:  BreakerConfig{Window: 30 * time.Second, MinCalls: 5, FailureRatio: 0.5, Cooldown: 10 * time.Second, Probes: 2},
		MaxDepth: 3,
	}
	if c.Default != want.Default || len(c.Rules) != 2 || c.Rules[0] != want.Rules[0] || c.Rules[1] != want.Rules[1] || c.Breaker != want.Breaker || c.MaxDepth != 3 {
		t.Fatalf("decoded %+v\nwant    %+v", c, want)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(out, &back); err != nil || back.Rules[0] != c.Rules[0] {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
	for _, bad := range []string{"default: {rat: 1}", "rules: [{peer: p, dir: sideways}]", "breaker: {cooldwn: 1s}"} {
		dec := yaml.NewDecoder(strings.NewReader(bad))
		dec.KnownFields(true)
		var c Config
		if err := dec.Decode(&c); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseRateCost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		rate float64
		ok   bool
	}{
		{"10/s", 10, true},
		{"10", 10, true},
		{"600/m", 10, true},
		{"3600/h", 1, true},
		{"5/10s", 0.5, true},
		{"0.5/s", 0.5, true},
		{"86400/d", 1, true},
		{"0", 0, true},
		{"-1/s", 0, false},
		{"abc", 0, false},
		{"10/fortnight", 0, false},
		{"10/0s", 0, false},
		{"NaN/s", 0, false},
		{"1e9/s", 0, false},
		{"", 0, false},
	} {
		r, err := ParseRate(tc.in)
		if tc.ok != (err == nil) || (tc.ok && math.Abs(r-tc.rate) > 1e-12) {
			t.Errorf("ParseRate(%q) = %v, %v", tc.in, r, err)
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseRate(%q) error not ErrSyntax: %v", tc.in, err)
		}
	}
	for _, tc := range []struct {
		in   string
		cost float64
		win  time.Duration
		ok   bool
	}{
		{"100/1h", 100, time.Hour, true},
		{"100/h", 100, time.Hour, true},
		{"5000/d", 5000, 24 * time.Hour, true},
		{"20/7d", 20, 7 * 24 * time.Hour, true},
		{"1.5/30m", 1.5, 30 * time.Minute, true},
		{"100", 0, 0, false},      // needs a window
		{"100/1ms", 0, 0, false},  // too short
		{"100/40d", 0, 0, false},  // too long
		{"100/0d", 0, 0, false},   // zero days
		{"1e16/h", 0, 0, false},   // too much
		{"x/h", 0, 0, false},      // not a number
		{"100/1h/2", 0, 0, false}, // junk
		{"100/-1h", 0, 0, false},  // negative
		{"100/1.5d", 0, 0, false}, // fractional days
		{"100/ 1h", 0, 0, false},  // space
		{" 100/1h", 100, time.Hour, true},
	} {
		c, w, err := ParseCost(tc.in)
		if tc.ok != (err == nil) || (tc.ok && (c != tc.cost || w != tc.win)) {
			t.Errorf("ParseCost(%q) = %v, %v, %v", tc.in, c, w, err)
		}
	}
}

func TestLimitString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		l    Limit
		want string
	}{
		{Limit{}, "unlimited"},
		{Limit{Rate: 10}, "10/s burst 10"},
		{Limit{Rate: 0.5, Burst: 3, Concurrency: 2}, "0.5/s burst 3, concurrency 2"},
		{Limit{BytesIn: 100, BytesOut: 200, Window: 90 * time.Second}, "bytes in 100/1m30s, bytes out 200/1m30s"},
		{Limit{Cost: 100, CostWindow: 24 * time.Hour}, "cost 100/24h"},
	} {
		if got := tc.l.String(); got != tc.want {
			t.Errorf("%+v: String = %q, want %q", tc.l, got, tc.want)
		}
	}
	if got := (BreakerConfig{}).String(); got != "opens at 50% failures of >= 5 calls in 30s, cooldown 10s" {
		t.Errorf("BreakerConfig.String = %q", got)
	}
}

func TestWithRule(t *testing.T) {
	t.Parallel()
	c := Config{Rules: []Rule{{Peer: "a", Limit: Limit{Rate: 1}}, {Peer: "b", Capability: "x", Limit: Limit{Concurrency: 2}}}}
	r, ok := c.Rule("b", "x", Both)
	if !ok || r.Concurrency != 2 {
		t.Fatalf("Rule = %+v, %v", r, ok)
	}
	r.Rate = 5
	c2 := c.WithRule(r)
	if len(c2.Rules) != 2 || c2.Rules[1].Rate != 5 || c2.Rules[1].Concurrency != 2 || c.Rules[1].Rate != 0 {
		t.Fatalf("WithRule replace: %+v (original %+v)", c2.Rules, c.Rules)
	}
	c3 := c2.WithRule(Rule{Peer: "b", Dir: Out, Limit: Limit{Concurrency: 1}})
	if len(c3.Rules) != 3 {
		t.Fatalf("WithRule append: %+v", c3.Rules)
	}
	c4 := c3.WithoutRule("a", "", Both)
	if len(c4.Rules) != 2 || c4.Rules[0].Peer != "b" || len(c3.Rules) != 3 {
		t.Fatalf("WithoutRule: %+v", c4.Rules)
	}
	if _, ok := c4.Rule("a", "", Both); ok {
		t.Fatal("rule still there")
	}
}

func TestDirText(t *testing.T) {
	t.Parallel()
	for _, d := range []Dir{Both, In, Out} {
		b, err := d.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var r Dir
		if err := r.UnmarshalText(b); err != nil || r != d {
			t.Errorf("%v: %v %v", d, r, err)
		}
	}
	if _, err := Dir(5).MarshalText(); err == nil || Dir(5).String() != "dir(5)" {
		t.Error("invalid Dir marshalled")
	}
}

// A rate prints as it would be configured, short enough for a refusal's
// 64-byte wire token, and parses back to about the same rate.
func TestFormatRate(t *testing.T) {
	for r, want := range map[float64]string{
		10: "10/s", 0.5: "0.5/s", 1.0 / 60: "1/m", 2.0 / 3600: "2/h", 1.0 / 86400: "1/d",
		1.0 / 7 / 3600: "3.429/d", 1.0 / 7: "8.571/m", 1e6: "1000000/s", 0: "0/s",
	} {
		got := FormatRate(r)
		if got != want {
			t.Errorf("FormatRate(%v) = %q, want %q", r, got, want)
		}
		back, err := ParseRate(got)
		if err != nil || r != 0 && (back/r < 0.999 || back/r > 1.001) {
			t.Errorf("ParseRate(%q) = %v, %v; want about %v", got, back, err, r)
		}
	}
}
