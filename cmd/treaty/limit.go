package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
)

// limitJSON is one limit as `treaty limit ls --json` prints it: the values written
// in treaty.yaml (an omitted field is unlimited, or its default: burst
// max(1, ceil(rate)), window 1m, cost_window 1h), and the effective limit in words.
type limitJSON struct {
	Rate        float64 `json:"rate,omitempty"` // calls per second
	Burst       int     `json:"burst,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	BytesIn     int64   `json:"bytes_in,omitempty"`
	BytesOut    int64   `json:"bytes_out,omitempty"`
	Window      string  `json:"window,omitempty"` // as "1m", "1h30m"
	Cost        float64 `json:"cost,omitempty"`
	CostWindow  string  `json:"cost_window,omitempty"`
	FailedCost  float64 `json:"failed_cost,omitempty"` // set in treaty.yaml only
	Summary     string  `json:"summary"`               // budget.Limit.String(): "10/s burst 20, concurrency 4" or "unlimited"
}

type ruleJSON struct {
	Name       string `json:"name"`                 // the peer's nickname; "" for "*" or a peer outside the book
	Peer       string `json:"peer"`                 // did:key or "*"
	Capability string `json:"capability,omitempty"` // omitted: peer-wide
	Dir        string `json:"dir"`                  // in, out or both
	limitJSON
}

type limitsJSON struct {
	Default limitJSON  `json:"default"`
	Rules   []ruleJSON `json:"rules"`
}

func toLimitJSON(l budget.Limit) limitJSON {
	out := limitJSON{
		Rate: l.Rate, Burst: l.Burst, Concurrency: l.Concurrency, BytesIn: l.BytesIn, BytesOut: l.BytesOut,
		Cost: l.Cost, FailedCost: l.FailedCost, Summary: l.String(),
	}
	if l.Window != 0 {
		out.Window = budget.FormatWindow(l.Window)
	}
	if l.CostWindow != 0 {
		out.CostWindow = budget.FormatWindow(l.CostWindow)
	}
	return out
}

func limitCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "limit", Short: "per-peer budgets: rate, burst, concurrency, bytes, cost", Args: args(cobra.NoArgs)}

	var capName, dirName, rate, cost string
	var burst, concurrency int
	var bytesIn, bytesOut int64
	var window time.Duration
	set := &cobra.Command{
		Use:   "set PEER [--cap CAP] [--dir in|out|both] [--rate N/s] [--burst N] [--concurrency N] [--cost N/WINDOW] [--bytes-in N] [--bytes-out N] [--window DURATION]",
		Short: "set a budget rule in treaty.yaml (a running node applies it within a second)",
		Long: "PEER is a nickname or did:key from the peer book, or '*' for every peer separately.\n" +
			"Only the limits given change; the rest of an existing rule stays. --rate none removes the\n" +
			"rate limit (--rate 0 is refused); 0 for the other limits means unlimited.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			d, err := parseDir(dirName)
			if err != nil {
				return err
			}
			if err := checkCapFlag(capName); err != nil {
				return err
			}
			var ch home.LimitChange
			f := cmd.Flags()
			if f.Changed("rate") {
				var r float64
				if rate != rateNone {
					var err error
					if r, err = budget.ParseRate(rate); err != nil {
						return usagef("--rate %q: want N/s, N/m, N/h, N/DURATION (as in 5/10s) or N (per second), with N > 0 and at most 1e6/s, or %q to remove the rate limit", rate, rateNone)
					}
					if r == 0 {
						return usagef("--rate %q would not limit anything: to stop PEER calling, use 'treaty ungrant'; to remove the rate limit, use --rate %s", rate, rateNone)
					}
				}
				ch.Rate = &r
			}
			if f.Changed("cost") {
				n, w, err := budget.ParseCost(cost)
				if err != nil {
					return usagef("--cost %q: want N/WINDOW (as in 100/1h, 5000/d, 20/24h), N in [0, 1e15], WINDOW in [1s, 744h]", cost)
				}
				ch.Cost, ch.CostWindow = &n, &w
			}
			for _, v := range []struct {
				name, zero string
				n          int64
				dst        func()
			}{
				{"burst", "max(1, ceil(rate))", int64(burst), func() { ch.Burst = &burst }},
				{"concurrency", "unlimited", int64(concurrency), func() { ch.Concurrency = &concurrency }},
				{"bytes-in", "unlimited", bytesIn, func() { ch.BytesIn = &bytesIn }},
				{"bytes-out", "unlimited", bytesOut, func() { ch.BytesOut = &bytesOut }},
			} {
				if !f.Changed(v.name) {
					continue
				}
				if v.n < 0 {
					return usagef("--%s %d: want an integer >= 0 (0: %s)", v.name, v.n, v.zero)
				}
				v.dst()
			}
			if f.Changed("window") {
				if window < time.Second {
					return usagef("--window %v: want a duration in [1s, 744h], as in 1m", window)
				}
				ch.Window = &window
			}
			if ch.IsZero() {
				return usagef("nothing to set: give at least one of --rate, --burst, --concurrency, --cost, --bytes-in, --bytes-out, --window")
			}
			if _, err := home.SetLimit(h(), a[0], capName, d, ch); err != nil {
				return limitError(err)
			}
			if capName != "" && d == budget.In {
				if cfg, err := config.Load(h()); err == nil {
					if _, ok := cfg.Capability(capName); !ok {
						fmt.Fprintf(cmd.ErrOrStderr(), "treaty: warning: this node exposes no capability %q (yet)\n", capName)
					}
				}
			}
			return nil
		},
	}
	set.Flags().StringVar(&capName, "cap", "", "limit one capability (default: the peer-wide limit)")
	set.Flags().StringVar(&dirName, "dir", "in", "in (PEER calls this node), out (this node calls PEER) or both (each separately)")
	set.Flags().StringVar(&rate, "rate", "", "calls per time: N/s, N/m, N/h or N/DURATION; none removes the rate limit")
	set.Flags().IntVar(&burst, "burst", 0, "token bucket size (default max(1, ceil(rate)))")
	set.Flags().IntVar(&concurrency, "concurrency", 0, "calls in flight")
	set.Flags().StringVar(&cost, "cost", "", "backend-reported cost per window: N/WINDOW, as in 100/1h")
	set.Flags().Int64Var(&bytesIn, "bytes-in", 0, "bytes received per window")
	set.Flags().Int64Var(&bytesOut, "bytes-out", 0, "bytes sent per window")
	set.Flags().DurationVar(&window, "window", 0, "window of --bytes-in and --bytes-out (default 1m)")

	var rmCap, rmDir string
	rm := &cobra.Command{
		Use: "rm PEER [--cap CAP] [--dir in|out|both]", Short: "remove a budget rule", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			d, err := parseDir(rmDir)
			if err != nil {
				return err
			}
			if err := checkCapFlag(rmCap); err != nil {
				return err
			}
			removed, err := home.RemoveLimit(h(), a[0], rmCap, d)
			if err != nil {
				return limitError(err)
			}
			if !removed {
				fmt.Fprintln(cmd.ErrOrStderr(), "treaty: no such rule to remove")
			}
			return nil
		},
	}
	rm.Flags().StringVar(&rmCap, "cap", "", "the capability of the rule (default: the peer-wide rule)")
	rm.Flags().StringVar(&rmDir, "dir", "in", "in, out or both")

	var asJSON bool
	ls := &cobra.Command{
		Use: "ls", Short: "the default limit and every budget rule", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			def, rules, err := home.Limits(h())
			if err != nil {
				return err
			}
			if asJSON {
				out := limitsJSON{Default: toLimitJSON(def), Rules: make([]ruleJSON, 0, len(rules))}
				for _, r := range rules {
					out.Rules = append(out.Rules, ruleJSON{Name: r.Name, Peer: r.Peer, Capability: r.Capability, Dir: r.Dir.String(), limitJSON: toLimitJSON(r.Limit)})
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPEER\tCAPABILITY\tDIR\tLIMIT")
			fmt.Fprintf(tw, "-\tdefault\t-\tboth\t%s\n", def)
			for _, r := range rules {
				tprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dash(r.Name), r.Peer, dash(r.Capability), r.Dir, r.Limit)
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "JSON output")

	c.AddCommand(set, rm, ls)
	return c
}

// rateNone is the --rate value that removes a rate limit; a rate of 0 is refused
// because it reads as "deny" but would mean "unlimited".
const rateNone = "none"

func parseDir(s string) (budget.Dir, error) {
	switch s {
	case "in":
		return budget.In, nil
	case "out":
		return budget.Out, nil
	case "both":
		return budget.Both, nil
	}
	return 0, usagef("--dir %q: want in, out or both", s)
}

func checkCapFlag(s string) error {
	if s != "" && !config.ValidBudgetCapability(s) {
		return usagef("--cap %q: want a capability name (lower-case letters, digits, '.', '_', '-'; at most 64; not starting with \"treaty.\") or group:GROUP", s)
	}
	return nil
}

// limitFlags turns budget's field names in a validation error into the flags that
// set them.
var limitFlags = strings.NewReplacer(
	"home: bad limit: ", "",
	"budget: rule.", "",
	"CostWindow", "--cost window",
	"FailedCost", "failed_cost",
	"BytesIn", "--bytes-in",
	"BytesOut", "--bytes-out",
	"Window", "--window",
	"Rate", "--rate",
	"Burst", "--burst",
	"Concurrency", "--concurrency",
	"Cost", "--cost",
)

// limitError makes a refused value a usage error (exit 2) naming the flag.
func limitError(err error) error {
	if errors.Is(err, home.ErrBadLimit) {
		return usageError{errors.New(limitFlags.Replace(err.Error()))}
	}
	return err
}
