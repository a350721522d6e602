package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/localapi"
)

func groupCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "consensus groups: create, list, add or remove members", Args: args(cobra.NoArgs)}

	var mode, members, nonce string
	var join, newNonce bool
	create := &cobra.Command{
		Use:   "create GROUP --mode raft|bft --members PEER,PEER,...",
		Short: "create a group; list every member, this node included (each member's operator creates it alike)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if mode != "raft" && mode != "bft" {
				return usagef("--mode %q: want raft or bft", mode)
			}
			var list []string
			for _, m := range strings.Split(members, ",") {
				if m = strings.TrimSpace(m); m != "" {
					list = append(list, m)
				}
			}
			if len(list) == 0 {
				return usagef("--members is required: every member, this node included")
			}
			n, err := groupNonce(nonce, newNonce, join)
			if err != nil {
				return err
			}
			req := localapi.GroupCreateRequest{Name: a[0], Mode: mode, Members: list, Join: join, Nonce: n.String()}
			if err := client.New(h()).GroupCreate(cmd.Context(), req); err != nil {
				return err
			}
			if newNonce {
				fmt.Fprintf(cmd.OutOrStdout(), "nonce %s\ncreate the group on every other member with --nonce %s (and join with it)\n", n, n)
			}
			return nil
		},
	}
	create.Flags().StringVar(&mode, "mode", "", "raft (inside one organisation) or bft (across organisations)")
	create.Flags().StringVar(&members, "members", "", "comma-separated peer IDs or nicknames, this node included")
	create.Flags().BoolVar(&join, "join", false, "join a group (raft or bft) that added this node: --members lists the group as it was created, without this node")
	create.Flags().StringVar(&nonce, "nonce", "", "the group's creation nonce (32 hex digits) that its first member printed; the same on every member")
	create.Flags().BoolVar(&newNonce, "new-nonce", false, "draw a new creation nonce and print it: a group created again then has another ID, so no request signed for an earlier one is valid in it")

	var lsJSON bool
	ls := &cobra.Command{
		Use: "ls", Short: "each group's mode, members, leader or view, f and health", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			gs, err := client.New(h()).Groups(cmd.Context())
			if err != nil {
				return err
			}
			if lsJSON {
				return printJSON(cmd.OutOrStdout(), gs)
			}
			return printGroups(cmd.OutOrStdout(), gs)
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "JSON output")

	change := func(remove bool) *cobra.Command {
		verb, what := "add", "add PEER to"
		if remove {
			verb, what = "rm", "remove PEER from"
		}
		var text string
		cc := &cobra.Command{
			Use:   verb + " GROUP PEER [--text TEXT]",
			Short: "open the group's motion to " + what + " the group; members vote on it (motion vote GROUP #INDEX yes)",
			Args:  args(cobra.ExactArgs(2)),
			RunE: func(cmd *cobra.Command, a []string) error {
				d, err := client.New(h()).GroupMember(cmd.Context(), localapi.GroupMemberRequest{Group: a[0], Peer: a[1], Remove: remove, Text: text})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "motion %s open at index %d; it passes with the group's quorum\n", d.Motion, d.Index)
				return nil
			},
		}
		cc.Flags().StringVar(&text, "text", "", "why (at most 4 KiB)")
		return cc
	}
	c.AddCommand(create, ls, change(false), change(true))
	return c
}

func printGroups(w io.Writer, gs []localapi.GroupInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMODE\tEPOCH\tN\tF\tQUORUM\tLEADER\tTERM/VIEW\tINDEX\tHEALTH\tMEMBERS")
	for _, g := range gs {
		if g.Error != "" {
			tprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\tnot running: %s\t-\n", g.Name, g.Error)
			continue
		}
		leader, health := "-", "ok"
		var members []string
		for _, m := range g.Members {
			name := m.Name
			if name == "" {
				name = shortID(m.ID)
			}
			if m.ID == g.Leader {
				leader = name
			}
			switch {
			case m.Refused != "":
				name += "(refused: " + m.Refused + ")"
			case !m.Reachable:
				name += "(unreachable)"
			}
			members = append(members, name)
		}
		if !g.Healthy {
			health = "no quorum"
			if g.Leader == "" {
				health = "no leader"
			}
		}
		tprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n", g.Name, g.Mode, g.Epoch, g.N, g.F, g.Quorum,
			leader, g.Term, g.LastIndex, health, strings.Join(members, ","))
	}
	return tw.Flush()
}

// groupNonce is the nonce group create asks for: the one given, a new one,
// or none.
func groupNonce(given string, draw, join bool) (fsm.Nonce, error) {
	switch {
	case draw && given != "":
		return fsm.Nonce{}, usagef("--nonce and --new-nonce: give one of them")
	case draw && join:
		return fsm.Nonce{}, usagef("--new-nonce with --join: a joining node takes the group's nonce with --nonce")
	case draw:
		return fsm.NewNonce()
	}
	n, err := fsm.ParseNonce(given)
	if err != nil {
		return fsm.Nonce{}, usagef("--nonce: %v", err)
	}
	return n, nil
}

// shortID is the tail of a did:key, enough to tell members apart.
func shortID(did string) string {
	if len(did) > 16 {
		return did[len(did)-8:]
	}
	return did
}
