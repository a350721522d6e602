package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/localapi"
)

func kvCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "kv", Short: "a group's replicated key-value store", Args: args(cobra.NoArgs)}

	var ifVersion uint64
	put := &cobra.Command{
		Use:   "put GROUP KEY VALUE [--if-version N]",
		Short: "set KEY once the group commits it; prints the committed index and version",
		Long: "Returns only once the group committed the value, or fails with a typed error:\n" +
			"no quorum or timeout (exit 4), CAS mismatch (exit 1), not a member (exit 3),\n" +
			"a value the sanitizer blocks (exit 5).",
		Args: args(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, a []string) error {
			req := localapi.KVPutRequest{Group: a[0], Key: a[1], Value: a[2]}
			if cmd.Flags().Changed("if-version") {
				req.IfVersion = &ifVersion
			}
			return kvPut(cmd, h(), req)
		},
	}
	put.Flags().Uint64Var(&ifVersion, "if-version", 0, "compare-and-set: only if the key is at this version (0: absent)")

	cas := &cobra.Command{
		Use:   "cas GROUP KEY VERSION VALUE",
		Short: "set KEY only if it is at VERSION (0: absent); a mismatch exits 1 naming the current version",
		Args:  args(cobra.ExactArgs(4)),
		RunE: func(cmd *cobra.Command, a []string) error {
			v, err := strconv.ParseUint(a[2], 10, 64)
			if err != nil {
				return usagef("VERSION %q: want a non-negative integer", a[2])
			}
			return kvPut(cmd, h(), localapi.KVPutRequest{Group: a[0], Key: a[1], Value: a[3], IfVersion: &v})
		},
	}

	var getJSON bool
	get := &cobra.Command{
		Use: "get GROUP KEY [--json]", Short: "print KEY's value (linearizable read)", Args: args(cobra.ExactArgs(2)),
		Long: "get prints KEY's value as it is to a pipe or a file; on a terminal its control characters\n" +
			"are shown as escapes (\\u001b), since any member of the group may have written it.",
		RunE: func(cmd *cobra.Command, a []string) error {
			it, err := client.New(h()).KVGet(cmd.Context(), a[0], a[1])
			if err != nil {
				return err
			}
			if getJSON {
				return printJSON(cmd.OutOrStdout(), it)
			}
			out := cmd.OutOrStdout()
			if isTerminal(out) { // a value another member wrote is data, exact in a pipe, escaped on a screen
				out = termSafe(out)
			}
			_, err = fmt.Fprintln(out, it.Value)
			return err
		},
	}
	get.Flags().BoolVar(&getJSON, "json", false, "JSON output with version and index")

	var lsJSON bool
	ls := &cobra.Command{
		Use: "ls GROUP [PREFIX] [--json]", Short: "the keys with PREFIX, sorted", Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			prefix := ""
			if len(a) == 2 {
				prefix = a[1]
			}
			ans, err := client.New(h()).KVListAnswer(cmd.Context(), a[0], prefix)
			if err != nil {
				return err
			}
			if lsJSON {
				warnCut(cmd.ErrOrStderr(), ans)
				return printJSON(cmd.OutOrStdout(), ans.Keys)
			}
			printKeys(cmd.OutOrStdout(), cmd.ErrOrStderr(), ans)
			return nil
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "JSON output")
	c.AddCommand(put, cas, get, ls)
	return c
}

// printKeys prints the answer's keys one a line and, when the node cut the
// answer at its limit, says so on stderr.
func printKeys(out, errOut io.Writer, ans localapi.KVList) {
	for _, k := range ans.Keys {
		fmt.Fprintln(out, clean(k))
	}
	warnCut(errOut, ans)
}

// warnCut says on stderr that a kv ls answer was cut at its limit.
func warnCut(errOut io.Writer, ans localapi.KVList) {
	if ans.Truncated {
		fmt.Fprintf(errOut, "treaty: more keys have this prefix: the answer holds the first %d (its limit); list by a longer prefix\n", ans.Limit)
	}
}

func kvPut(cmd *cobra.Command, home string, req localapi.KVPutRequest) error {
	d, err := client.New(home).KVPut(cmd.Context(), req)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "index %d version %d\n", d.Index, d.Version)
	return err
}
