package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

func decisionCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "decision", Short: "a group's decision records: export, verify offline", Args: args(cobra.NoArgs)}
	export := &cobra.Command{
		Use:   "export GROUP INDEX",
		Short: "print the self-contained decision record of INDEX (JSON)",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			index, err := strconv.ParseUint(a[1], 10, 64)
			if err != nil || index == 0 {
				return usagef("INDEX %q: want a positive integer", a[1])
			}
			rec, err := client.New(h()).DecisionExport(cmd.Context(), a[0], index)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", rec)
			return err
		},
	}
	var groupID string
	verify := &cobra.Command{
		Use:   "verify FILE [--group-id ID]",
		Short: "check a decision record offline (no node needed); exit 0 or 1",
		Long: "Checks that the group definition hashes to its ID, that the request was signed by\n" +
			"a member, and for BFT that at least a quorum of members signed the decision and its\n" +
			"result. A Raft record carries no certificate and says so. FILE - reads stdin.\n" +
			"The record carries its own group definition: anyone can make one for a group of\n" +
			"their own keys with the same name. --group-id (from 'treaty group ls --json', for\n" +
			"the record's epoch) refuses every record of another group.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var want fsm.ID
			if groupID != "" {
				if err := want.UnmarshalText([]byte(groupID)); err != nil {
					return usagef("--group-id: %v", err)
				}
			}
			b, err := readRecord(cmd.InOrStdin(), a[0])
			if err != nil {
				return err
			}
			r, err := fsm.ParseRecord(b)
			if err == nil {
				err = fsm.Verify(r)
			}
			if err == nil && groupID != "" && r.Group.ID != want {
				err = &fsm.VerifyError{Check: "group", Err: fmt.Errorf("the record is of group %s, not %s", r.Group.ID, want)}
			}
			if err != nil {
				return err // exit 1: the record does not verify
			}
			// The record may come from anyone: every field it names is
			// printed escaped, and a result no quorum signed says so.
			out := cmd.OutOrStdout()
			tprintf(out, "ok: decision %d of group %s (%s, epoch %d, id %s)\n", r.Index, r.Group.Name, r.Group.Mode, r.Group.Epoch, r.Group.ID)
			if groupID == "" {
				fmt.Fprintf(out, "group not pinned: the record defines its own group; compare its id or pass --group-id\n")
			}
			label := "result"
			if r.Group.Mode == fsm.ModeBFT {
				tprintf(out, "certificate: %d member signatures over the entry and its result\n", len(r.Certificate))
			} else {
				tprintf(out, "no certificate: %s\n", r.NoCertificate)
				label = "result (not attested: the exporting node's word)"
			}
			if r.Result.Code.Unattributed() {
				// The group ordered bytes it could not attribute to a member
				// (a request signed for an epoch that ended while it waited, a
				// forgery): the record proves the refusal, not who sent them.
				tprintf(out, "request: not attributable to a member; the group refused it (%s): %s\n", r.Result.Code, r.Result.Reason)
			} else if r.Result.Code != "" {
				tprintf(out, "%s: refused (%s): %s\n", label, r.Result.Code, r.Result.Reason)
			} else if r.Result.Motion != "" {
				tprintf(out, "%s: motion %s %s\n", label, r.Result.Motion, r.Result.Outcome)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&groupID, "group-id", "", "refuse a record that is not of the group epoch with this ID (64 hex digits)")
	c.AddCommand(export, verify)
	return c
}

func readRecord(stdin io.Reader, path string) ([]byte, error) {
	var r io.Reader = stdin
	if path != "-" {
		// A missing or odd file exits 1 too: verify answers 0 or 1.
		if st, err := os.Stat(path); err != nil {
			return nil, err
		} else if !st.Mode().IsRegular() { // a FIFO would block the open
			return nil, fmt.Errorf("%s: not a regular file (%s)", path, fileKind(st.Mode()))
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, fsm.MaxRecordSize+1))
}
