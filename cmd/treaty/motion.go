package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/localapi"
)

func motionCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "motion", Short: "a group's motions: open, vote, show, list", Args: args(cobra.NoArgs)}

	var quorum uint32
	var deadline time.Duration
	var text string
	open := &cobra.Command{
		Use:   "open GROUP MOTION --quorum N [--deadline DURATION] [--text TEXT]",
		Short: "open a motion that passes with N yes votes (or fails at the deadline)",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if quorum == 0 {
				return usagef("--quorum is required (1 to the number of members)")
			}
			if deadline < 0 {
				return usagef("--deadline %v is negative", deadline)
			}
			req := localapi.MotionOpenRequest{Group: a[0], Name: a[1], Quorum: quorum, Text: text}
			if deadline > 0 {
				req.Deadline = deadline.String()
			}
			d, err := client.New(h()).MotionOpen(cmd.Context(), req)
			if err != nil {
				return err
			}
			printVote(cmd.OutOrStdout(), a[0], d)
			return nil
		},
	}
	open.Flags().Uint32Var(&quorum, "quorum", 0, "yes votes needed to pass")
	open.Flags().DurationVar(&deadline, "deadline", 0, "fail unless passed within this long (agreed time)")
	open.Flags().StringVar(&text, "text", "", "what the motion decides (at most 4 KiB)")

	vote := &cobra.Command{
		Use: "vote GROUP MOTION yes|no", Short: "vote on a motion; votes are final", Args: args(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if a[2] != "yes" && a[2] != "no" {
				return usagef("vote %q: want yes or no", a[2])
			}
			d, err := client.New(h()).MotionVote(cmd.Context(), a[0], a[1], a[2] == "yes")
			if err != nil {
				return err
			}
			printVote(cmd.OutOrStdout(), a[0], d)
			return nil
		},
	}

	var showJSON bool
	show := &cobra.Command{
		Use: "show GROUP MOTION [--json]", Short: "open, passed or failed, with the tally", Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			mo, err := client.New(h()).MotionShow(cmd.Context(), a[0], a[1])
			if err != nil {
				return err
			}
			if showJSON {
				return printJSON(cmd.OutOrStdout(), mo)
			}
			return printMotion(cmd.OutOrStdout(), mo)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "JSON output")

	var lsJSON bool
	ls := &cobra.Command{
		Use: "ls GROUP [--json]", Short: "the motions the group keeps, oldest first", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ms, err := client.New(h()).MotionList(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if lsJSON {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MOTION\tKIND\tOUTCOME\tYES\tNO\tQUORUM\tOPENED")
			for _, m := range ms {
				tprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", m.Name, m.Kind, m.Outcome, len(m.Yes), len(m.No), m.Quorum, m.Opened)
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "JSON output")
	c.AddCommand(open, vote, show, ls)
	return c
}

func printMotion(w io.Writer, m localapi.MotionInfo) error {
	tprintf(w, "motion:   %s (%s)\n", m.Name, m.Kind)
	tprintf(w, "outcome:  %s", m.Outcome)
	if m.Reason != "" {
		tprintf(w, " (%s)", m.Reason)
	}
	tprintf(w, "\ntally:    %d yes, %d no, quorum %d\n", len(m.Yes), len(m.No), m.Quorum)
	if m.Subject != "" {
		tprintf(w, "subject:  %s\n", m.Subject)
	}
	if m.Deadline != nil {
		tprintf(w, "deadline: %s\n", m.Deadline.Format(time.RFC3339))
	}
	if m.Text != "" {
		tprintf(w, "text:     %s\n", m.Text)
	}
	tprintf(w, "proposer: %s\nyes:      %s\nno:       %s\n", m.Proposer, strings.Join(m.Yes, ", "), strings.Join(m.No, ", "))
	return nil
}

// printVote reports a committed vote. A vote that passed this node's own
// removal succeeded (exit 0): it says so, and that the node is no longer a
// member.
func printVote(out io.Writer, group string, d localapi.Decision) {
	tprintf(out, "motion %s %s at index %d\n", d.Motion, d.Outcome, d.Index)
	if d.Removed {
		tprintf(out, "removed: this node is no longer a member of group %s\n", group)
	}
}
