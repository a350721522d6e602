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
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "check a decision record offline (no node needed); exit 0 or 1",
		Long: "Checks that the group definition hashes to its ID, that the request was signed by\n" +
			"a member, and for BFT that at least a quorum of members signed the decision and its\n" +
			"result. A Raft record carries no certificate and says so. FILE - reads stdin.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			b, err := readRecord(cmd.InOrStdin(), a[0])
			if err != nil {
				return err
			}
			r, err := fsm.ParseRecord(b)
			if err == nil {
				err = fsm.Verify(r)
			}
			if err != nil {
				return err // exit 1: the record does not verify
			}
			// The record may come from anyone: every field it names is
			// printed escaped, and a result no quorum signed says so.
			out := cmd.OutOrStdout()
			tprintf(out, "ok: decision %d of group %s (%s, epoch %d, id %s)\n", r.Index, r.Group.Name, r.Group.Mode, r.Group.Epoch, r.Group.ID)
			label := "result"
			if r.Group.Mode == fsm.ModeBFT {
				tprintf(out, "certificate: %d member signatures over the entry and its result\n", len(r.Certificate))
			} else {
				tprintf(out, "no certificate: %s\n", r.NoCertificate)
				label = "result (not attested: the exporting node's word)"
			}
			if r.Result.Code != "" {
				tprintf(out, "%s: refused (%s): %s\n", label, r.Result.Code, r.Result.Reason)
			} else if r.Result.Motion != "" {
				tprintf(out, "%s: motion %s %s\n", label, r.Result.Motion, r.Result.Outcome)
			}
			return nil
		},
	}
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
			return nil, fmt.Errorf("%s: not a regular file (%v)", path, st.Mode().Type())
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
