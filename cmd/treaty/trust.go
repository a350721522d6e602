package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/trust"
)

// trustRow is one peer as `treaty trust ls --json` and `trust show --json` print
// it: the trust.Snapshot fields plus the peer's nickname ("" outside the peer book).
type trustRow struct {
	Name string `json:"name"`
	trust.Snapshot
}

func trustCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "trust", Short: "behavioural trust of peers: scores, levels, operator bounds", Args: args(cobra.NoArgs)}

	var lsJSON bool
	ls := &cobra.Command{
		Use: "ls", Short: "every peer's score, level, quarantine and operator bounds", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := trustRows(h(), time.Now())
			if err != nil {
				return err
			}
			if lsJSON {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPEER\tSCORE\tLEVEL\tQUARANTINED\tFLOOR\tCEILING")
			for _, r := range rows {
				tprintf(tw, "%s\t%s\t%.3f\t%s\t%s\t%s\t%s\n", dash(r.Name), r.Peer, r.Score, r.Level,
					yesNo(r.Quarantined), levelOrDash(r.Floor), levelOrDash(r.Ceiling))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "JSON output")

	var showJSON bool
	show := &cobra.Command{
		Use: "show PEER", Short: "a peer's score, level, recent evidence and time to decay back", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			now := time.Now()
			rows, err := trustRows(h(), now)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if r.Peer == a[0] || (r.Name != "" && r.Name == a[0]) {
					if showJSON {
						return printJSON(cmd.OutOrStdout(), r)
					}
					return printTrust(cmd.OutOrStdout(), r)
				}
			}
			return &home.UnknownPeerError{Ref: a[0]}
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "JSON output")

	var floor, ceiling string
	var lift bool
	set := &cobra.Command{
		Use:   "set PEER [--floor LEVEL] [--ceiling LEVEL] [--lift]",
		Short: "operator bounds: keep PEER's level within [floor, ceiling], or lift its quarantine",
		Long: "Levels, lowest first: " + home.LevelNames() + ". '" + home.ClearBound + "' removes a bound.\n" +
			"A running node applies the change at once; otherwise the trust book is edited directly.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			fl, cl := cmd.Flags().Changed("floor"), cmd.Flags().Changed("ceiling")
			if !fl && !cl && !lift {
				return usagef("at least one of --floor, --ceiling and --lift is required")
			}
			o := home.TrustOverride{Lift: lift}
			if fl {
				o.Floor = &floor
			}
			if cl {
				o.Ceiling = &ceiling
			}
			cfg, err := config.Load(h())
			if err != nil {
				return err
			}
			p, ok := cfg.Peer(a[0])
			if !ok {
				return &home.UnknownPeerError{Ref: a[0]}
			}
			o.Peer = p.ID
			if err := o.Validate(); err != nil {
				return usageError{trustFlagError(err)}
			}
			err = client.New(h()).TrustSet(cmd.Context(), o.Peer, o.Floor, o.Ceiling, o.Lift)
			if !errors.Is(err, client.ErrNotRunning) {
				return err
			}
			err = home.SetTrust(h(), o, time.Now())
			if errors.Is(err, trust.ErrLocked) {
				return fmt.Errorf("the trust book is held by a node that does not answer on its socket; retry when it is up, or stop it: %w", err)
			}
			return err
		},
	}
	set.Flags().StringVar(&floor, "floor", "", "lowest level outside quarantine ("+home.ClearBound+" clears it)")
	set.Flags().StringVar(&ceiling, "ceiling", "", "highest level ("+home.ClearBound+" clears it)")
	set.Flags().BoolVar(&lift, "lift", false, "end the peer's quarantine")

	c.AddCommand(ls, show, set)
	return c
}

// trustFlagError names the flag in a validation error of an override.
func trustFlagError(err error) error {
	msg := strings.TrimPrefix(err.Error(), home.ErrBadOverride.Error()+": ")
	for _, f := range []string{"floor", "ceiling"} {
		if rest, ok := strings.CutPrefix(msg, f+" "); ok {
			return fmt.Errorf("--%s %s", f, rest)
		}
	}
	return errors.New(msg)
}

// trustRows returns every peer of the peer book, then every other peer the trust
// book knows, with its trust at now. It reads trust.json without locking it, so it
// works while a node runs (the node writes ordinary evidence within a second).
func trustRows(dir string, now time.Time) ([]trustRow, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return nil, err
	}
	snaps, err := trust.ReadFile(cfg.Trust, filepath.Join(dir, node.TrustFile), now)
	if err != nil {
		return nil, err
	}
	known := make(map[string]trust.Snapshot, len(snaps))
	for _, s := range snaps {
		known[s.Peer] = s
	}
	rows := make([]trustRow, 0, len(cfg.Peers)+len(snaps))
	inBook := make(map[string]bool, len(cfg.Peers))
	for _, p := range cfg.Peers {
		inBook[p.ID] = true
		s, ok := known[p.ID]
		if !ok {
			s = priorSnapshot(cfg.Trust, p.ID, now)
		}
		rows = append(rows, trustRow{Name: p.Name, Snapshot: s})
	}
	for _, s := range snaps {
		if !inBook[s.Peer] {
			rows = append(rows, trustRow{Snapshot: s})
		}
	}
	for i := range rows {
		if rows[i].Recent == nil {
			rows[i].Recent = []trust.Evidence{}
		}
	}
	return rows, nil
}

// priorSnapshot is the trust of a peer with no evidence: the prior's score and level.
func priorSnapshot(cfg trust.Config, peer string, now time.Time) trust.Snapshot {
	var st trust.State
	return trust.Snapshot{Peer: peer, Score: st.Score(cfg, now), Level: st.Level(cfg, now), Recent: []trust.Evidence{}}
}

func printTrust(w io.Writer, r trustRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	peer := r.Peer
	if r.Name != "" {
		peer = r.Name + " " + r.Peer
	}
	tprintf(tw, "peer\t%s\n", peer)
	fmt.Fprintf(tw, "score\t%.3f\n", r.Score)
	fmt.Fprintf(tw, "level\t%s\n", r.Level)
	q := "no"
	if r.Quarantined {
		q = "yes"
		if c := r.QuarantineCause; c != nil {
			q += " (" + evidenceText(*c) + ")"
		}
	}
	tprintf(tw, "quarantined\t%s\n", q)
	fmt.Fprintf(tw, "floor\t%s\n", levelOrDash(r.Floor))
	fmt.Fprintf(tw, "ceiling\t%s\n", levelOrDash(r.Ceiling))
	fmt.Fprintf(tw, "evidence\tgood %.2f, bad %.2f\n", r.Good, r.Bad)
	decay := "at the prior"
	if r.DecayETA > 0 {
		decay = "back to the prior in " + roundDuration(r.DecayETA).String()
	}
	fmt.Fprintf(tw, "decay\t%s\n", decay)
	updated := "never"
	if !r.Updated.IsZero() {
		updated = r.Updated.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "updated\t%s\n", updated)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "recent evidence (%d, oldest first):\n", len(r.Recent))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range r.Recent {
		tprintf(tw, "  %s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Kind, weight(e.Weight), e.Detail)
	}
	return tw.Flush()
}

func evidenceText(e trust.Evidence) string {
	s := string(e.Kind) + " at " + e.At.UTC().Format(time.RFC3339)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func weight(w float64) string {
	s := strconv.FormatFloat(w, 'f', -1, 64)
	if w > 0 {
		s = "+" + s
	}
	return s
}

// roundDuration keeps a duration readable: seconds under an hour, minutes above.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

func levelOrDash(l *trust.Level) string {
	if l == nil {
		return "-"
	}
	return l.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
