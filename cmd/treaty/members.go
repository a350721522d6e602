package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/localapi"
)

// admissionCmds are `treaty members`, `invite`, `join`, `rotate` and `revoke`
// (docs/admission.md).
func admissionCmds(h func() string) []*cobra.Command {
	return []*cobra.Command{membersCmd(h), inviteCmd(h), joinCmd(h), rotateCmd(h), revokeCmd(h), admitCmd(h)}
}

func membersCmd(h func() string) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use: "members [--json]", Short: "members: source, status, gossip state, organisation, addresses, relay", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := client.New(h()).Members(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			return printMembers(cmd.OutOrStdout(), out)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return c
}

// printMembers writes the members table. VIA names the relay a member is
// reached through by its nickname when it is a member too.
func printMembers(w io.Writer, out []localapi.MemberInfo) error {
	names := map[string]string{}
	for _, m := range out {
		if m.Name != "" {
			names[m.ID] = m.Name
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSOURCE\tSTATUS\tSTATE\tORG\tADDR\tVIA")
	for _, m := range out {
		addr := m.Addr
		if len(m.Addrs) > 0 && m.Addrs[0] != addr {
			addr += " (says " + strings.Join(m.Addrs, ",") + ")" // cleaned whole by tprintf
		}
		via := m.Via
		if n, ok := names[via]; ok {
			via = n
		}
		tprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(m.Name), m.ID, dash(m.Source), m.Status,
			dash(m.State), dash(m.Org), dash(addr), dash(via))
	}
	return tw.Flush()
}

func inviteCmd(h func() string) *cobra.Command {
	var ttl time.Duration
	var uses int
	var addr string
	c := &cobra.Command{
		Use:   "invite [--ttl 1h] [--uses 1] [--addr HOST:PORT]",
		Short: "print a join token signed by this member (a secret: hand it to the newcomer only)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl <= 0 {
				return usagef("--ttl %v: want a positive duration, as in 1h", ttl)
			}
			if uses < 1 {
				return usagef("--uses %d: want at least 1", uses)
			}
			res, err := client.New(h()).Invite(cmd.Context(), localapi.InviteRequest{TTL: ttl.String(), Uses: uses, Addr: addr})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "treaty: valid until %s for %d join(s); the newcomer runs: treaty join TOKEN\n", res.Expires, res.Uses)
			return nil
		},
	}
	c.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid (at most membership.max_invite_ttl)")
	c.Flags().IntVar(&uses, "uses", 1, "how many nodes may join with it (at most membership.max_invite_uses)")
	c.Flags().StringVar(&addr, "addr", "", "where newcomers reach this node (default: its bound federation address)")
	return c
}

func joinCmd(h func() string) *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:   "join [--addr HOST:PORT] TOKEN",
		Short: "introduce this node to the federation with an invite token",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			res, err := client.New(h()).Join(cmd.Context(), localapi.JoinRequest{Token: a[0], Addr: addr})
			if err != nil {
				return err
			}
			tprintf(cmd.OutOrStdout(), "joined through %s (%s); %d other member(s) learned\n", res.Name, res.Inviter, res.Members)
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "", "where members reach this node (default: its bound federation address)")
	return c
}

func rotateCmd(h func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "make a new identity key, signed over by the old one; prints the new peer ID",
		Long: "Members move this node's peer book entry, grants, trust and budgets to the new key by\n" +
			"themselves; the running node restarts on it. Prepare a new revocation afterwards:\n" +
			"one prepared for the old key would revoke the new key too.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := client.New(h()).Rotate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.New)
			fmt.Fprintf(cmd.ErrOrStderr(), "treaty: %d of %d member(s) acknowledged; the old key %s is retired\n", res.Acked, res.Members, res.Old)
			return nil
		},
	}
}

// maxStatementFile bounds a statement file read by `treaty revoke FILE`.
const maxStatementFile = 4 << 10

func revokeCmd(h func() string) *cobra.Command {
	var prepare, reason string
	var gov governFlags
	c := &cobra.Command{
		Use:   "revoke [--prepare FILE [--reason TEXT]] [FILE | PEER [--wait] [--deadline 24h]]",
		Short: "revoke this node's key (prepared in advance, published when lost), or PEER's by the governing group",
		Long: "--prepare FILE signs a self-revocation with this home's key and writes it to FILE (mode\n" +
			"0600), without a running node: keep it offline. 'treaty revoke FILE' publishes a prepared\n" +
			"revocation through this home's running node, which may be any member's node.\n" +
			"Without arguments the running node revokes its own key at once. A revocation cannot be undone.\n" +
			"'treaty revoke PEER' (a peer ID or nickname, not a file) opens a motion of the governing\n" +
			"group (membership.governor) to revoke PEER, with this node's yes vote, and prints the\n" +
			"motion's name; the other members vote with 'treaty motion vote GROUP MOTION yes'. With\n" +
			"--wait it returns once the motion is decided.",
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if prepare != "" {
				if len(a) > 0 {
					return usagef("--prepare takes no other argument")
				}
				return prepareRevocation(h(), prepare, reason, cmd.ErrOrStderr())
			}
			if reason != "" {
				return usagef("--reason goes with --prepare")
			}
			var text string
			if len(a) == 1 {
				if fi, err := os.Stat(a[0]); err != nil || fi.IsDir() || strings.HasPrefix(a[0], "did:key:") {
					// Not a file: another member's key, by the governing group
					// (a directory of the same name as a peer, say its home, is
					// not a statement file).
					return gov.run(cmd, h(), localapi.GovernRequest{Action: membership.ActionRevoke, Peer: a[0]})
				}
				b, err := readStatementFile(a[0])
				if err != nil {
					return err
				}
				text = b
			} else {
				key, err := identity.LoadKeyFile(filepath.Join(h(), homedir.KeyFile))
				if err != nil {
					return err
				}
				if _, text, err = membership.SignRevocation(key, time.Now(), "revoked by its operator"); err != nil {
					return err
				}
			}
			if gov.changed(cmd) {
				return usagef("--wait and --deadline go with PEER (a revocation by the governing group)")
			}
			if _, err := membership.ParseRevocation(text); err != nil {
				return usagef("%v", err)
			}
			res, err := client.New(h()).Publish(cmd.Context(), text)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked; %d member(s) acknowledged\n", res.Acked)
			return nil
		},
	}
	c.Flags().StringVar(&prepare, "prepare", "", "write a signed self-revocation to this file (refuses to overwrite)")
	c.Flags().StringVar(&reason, "reason", "", "a short reason recorded with the prepared revocation (printable ASCII)")
	gov.register(c)
	return c
}

func admitCmd(h func() string) *cobra.Command {
	var name, addr string
	var gov governFlags
	c := &cobra.Command{
		Use:   "admit --name NAME --addr HOST:PORT [--wait] [--deadline 24h] PEER_ID",
		Short: "ask the governing group to admit a key: opens its motion, prints the motion's name",
		Long: "Opens a motion of the governing group (membership.governor) to admit PEER_ID, with this\n" +
			"node's yes vote. When it passes, every member adds the key to its peer book with source\n" +
			"decision, at the address this node gives; grants are still needed to call anything.\n" +
			"The other members vote with 'treaty motion vote GROUP MOTION yes'.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if name == "" || addr == "" {
				return usagef("admit needs --name and --addr")
			}
			return gov.run(cmd, h(), localapi.GovernRequest{Action: membership.ActionAdmit, Peer: a[0], Name: name, Addr: addr})
		},
	}
	c.Flags().StringVar(&name, "name", "", "the nickname members give the key")
	c.Flags().StringVar(&addr, "addr", "", "where the key's node listens (host:port)")
	gov.register(c)
	return c
}

// governFlags are the flags of a governing motion.
type governFlags struct {
	wait     bool
	deadline time.Duration
}

func (g *governFlags) register(c *cobra.Command) {
	c.Flags().BoolVar(&g.wait, "wait", false, "return once the governing group has decided, not once the motion is open")
	c.Flags().DurationVar(&g.deadline, "deadline", 24*time.Hour, "the motion fails if it has not passed by then")
}

func (g *governFlags) changed(c *cobra.Command) bool {
	return c.Flags().Changed("wait") || c.Flags().Changed("deadline")
}

// run opens the motion and prints its name on stdout (the rest on stderr).
func (g *governFlags) run(cmd *cobra.Command, home string, req localapi.GovernRequest) error {
	if g.deadline <= 0 {
		return usagef("--deadline %v: want a positive duration, as in 24h", g.deadline)
	}
	// Said before asking the node, which may not run: without a governing
	// group, only a key's own revocation exists.
	if cfg, err := config.Load(home); err == nil && cfg.Membership.Governor == nil {
		if req.Action == membership.ActionRevoke {
			return usagef("%s is not a revocation file, and revoking another member's key takes a governing group: set membership.governor in treaty.yaml (docs/admission.md)", req.Peer)
		}
		return usagef("admission by decision takes a governing group: set membership.governor in treaty.yaml, or admit with 'treaty peer add' or an invite")
	}
	req.Deadline, req.Wait = g.deadline.String(), g.wait
	res, err := client.New(home).Govern(cmd.Context(), req)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), res.Motion)
	if res.Outcome == "passed" {
		fmt.Fprintf(cmd.ErrOrStderr(), "treaty: group %s passed motion %s (%s %s)\n", res.Group, res.Motion, req.Action, res.Key)
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "treaty: motion %s opened in group %s at index %d with this node's yes vote; members vote: treaty motion vote %s %s yes\n",
		res.Motion, res.Group, res.Index, res.Group, res.Motion)
	return nil
}

func readStatementFile(path string) (string, error) {
	b, err := readFlagFile("revoke", path, maxStatementFile)
	if err != nil {
		return "", usagef("%v: not a revocation", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func prepareRevocation(home, path, reason string, stderr io.Writer) error {
	key, err := identity.LoadKeyFile(filepath.Join(home, homedir.KeyFile))
	if err != nil {
		return err
	}
	r, text, err := membership.SignRevocation(key, time.Now(), reason)
	if err != nil {
		return usagef("%v", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return usagef("%s exists; not overwriting it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "treaty: revocation of %s written to %s; keep it offline. Anyone holding it can revoke this key.\n", r.Key, path)
	return nil
}
