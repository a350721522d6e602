package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
)

func auditCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "inspect and verify the tamper-evident audit log", Args: args(cobra.NoArgs)}
	path := func() string { return filepath.Join(h(), node.AuditFile) }

	var against []string
	verify := &cobra.Command{
		Use: "verify [--against FILE]...", Short: "recompute every leaf and the tree, check every checkpoint; exit 1 naming the first bad entry",
		Long: "verify recomputes the log and checks it against its own signed checkpoints and pruning records.\n" +
			"--against FILE also checks it against a checkpoint kept elsewhere: FILE is a signed checkpoint note\n" +
			"(as a peer witnessed it, or from a receipt) or a peer's audit.db, whose witness row for this node is used.\n" +
			"A log cut back to before that checkpoint fails.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := home.ID(h())
			if err != nil {
				return err
			}
			var opts audit.VerifyOptions
			for _, f := range against {
				note, err := againstNote(cmd, f, id)
				if err != nil {
					return err
				}
				opts.Checkpoints = append(opts.Checkpoints, note)
			}
			if err := logExists(path()); err != nil {
				return err
			}
			res, err := audit.VerifyWith(cmd.Context(), path(), id, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.String())
			return nil
		},
	}
	verify.Flags().StringArrayVar(&against, "against", nil, "a checkpoint note file, or a peer's audit.db, to check the log against (repeatable)")

	var peer, kind, since string
	var limit int
	var asJSON bool
	ls := &cobra.Command{
		Use: "ls [--peer P] [--kind K] [--since T] [--limit N] [--json]", Short: "list entries, oldest first",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind != "" && !slices.Contains(audit.Kinds(), kind) {
				return usagef("unknown --kind %q; kinds: %s", kind, strings.Join(audit.Kinds(), ", "))
			}
			if limit < 0 {
				return usagef("--limit %d: want 0 (no limit) or more", limit)
			}
			f := audit.Filter{Kind: kind, Limit: limit}
			if peer != "" {
				cfg, err := config.Load(h())
				if err != nil {
					return err
				}
				id, err := peerID(cfg, peer)
				if err != nil {
					return usageError{err}
				}
				f.Peer = id
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				f.Since = t
			}
			if err := logExists(path()); err != nil {
				return err
			}
			r, err := audit.OpenReader(cmd.Context(), path())
			if err != nil {
				return err
			}
			defer r.Close()
			entries, err := r.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				if entries == nil {
					entries = []audit.Entry{}
				}
				return printJSON(cmd.OutOrStdout(), entries)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INDEX\tTIME\tKIND\tDIR\tPEER\tCAPABILITY\tOUTCOME\tSTAGE")
			for _, e := range entries {
				tprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Index, e.Time.Format(time.RFC3339),
					e.Kind, dash(e.Direction), dash(short(e.Peer)), dash(e.Capability), dash(e.Outcome), dash(e.Stage))
			}
			return tw.Flush()
		},
	}
	ls.Flags().StringVar(&peer, "peer", "", "only this peer (nickname or did:key)")
	ls.Flags().StringVar(&kind, "kind", "", "only this kind ("+strings.Join(audit.Kinds(), ", ")+")")
	ls.Flags().StringVar(&since, "since", "", "only entries at or after this time (RFC 3339, or a duration ago such as 1h)")
	ls.Flags().IntVar(&limit, "limit", 0, "at most this many entries")
	ls.Flags().BoolVar(&asJSON, "json", false, "JSON output")

	show := &cobra.Command{
		Use: "show N", Short: "one entry in full (JSON)", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			r, idx, err := openAt(cmd, path(), a[0])
			if err != nil {
				return err
			}
			defer r.Close()
			e, err := r.Get(cmd.Context(), idx)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), e)
		},
	}

	var proveJSON bool
	prove := &cobra.Command{
		Use: "prove N [--json]", Short: "an RFC 6962 inclusion proof of entry N against the signed checkpoint",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			r, idx, err := openAt(cmd, path(), a[0])
			if err != nil {
				return err
			}
			defer r.Close()
			p, err := r.Prove(cmd.Context(), idx)
			if err != nil {
				return err
			}
			if proveJSON {
				b, err := json.Marshal(p)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "entry %d of %d, %d proof hashes, root %x\n%s", p.Index, p.Size, len(p.Hashes), p.Root, p.Checkpoint)
			return nil
		},
	}
	prove.Flags().BoolVar(&proveJSON, "json", false, `print {"index","size","leaf","proof","root","checkpoint"}`)

	var format string
	export := &cobra.Command{
		Use: "export [--format jsonl|csv]", Short: "every entry, for other tools", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" && format != "csv" {
				return usagef("--format must be jsonl or csv")
			}
			if err := logExists(path()); err != nil {
				return err
			}
			return audit.Export(cmd.Context(), path(), cmd.OutOrStdout(), format)
		},
	}
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")

	c.AddCommand(verify, ls, show, prove, export)
	return c
}

// againstNote reads a --against file: a signed checkpoint note, or a peer's
// audit.db holding a witness row for id.
func againstNote(cmd *cobra.Command, file string, id identity.PublicKey) ([]byte, error) {
	const sqliteMagic = "SQLite format 3\x00"
	head, err := fileHead("--against", file, len(sqliteMagic))
	if err != nil {
		return nil, err
	}
	if string(head) != sqliteMagic {
		b, err := readFlagFile("--against", file, audit.MaxNoteSize)
		if err != nil {
			return nil, usagef("%v: not a checkpoint note (at most %d bytes) or an audit.db", err, audit.MaxNoteSize)
		}
		return b, nil
	}
	note, ok, err := audit.WitnessedCheckpoint(cmd.Context(), file, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, usagef("--against %s: that log holds no witnessed checkpoint of %s", file, id)
	}
	return note, nil
}

// logExists says plainly that a home has no audit log, rather than SQLite's
// "unable to open database file". It stays an error (exit 1): a log that is
// gone is not an intact log.
func logExists(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit: no audit log at %s (a node creates it when it first runs; if one ran here, the log was removed)", path)
	}
	return nil
}

// openAt parses an entry index and opens the log read-only.
func openAt(cmd *cobra.Command, path, index string) (*audit.Reader, uint64, error) {
	idx, err := strconv.ParseUint(index, 10, 64)
	if err != nil {
		return nil, 0, usagef("N must be an entry index: %v", err)
	}
	if err := logExists(path); err != nil {
		return nil, 0, err
	}
	r, err := audit.OpenReader(cmd.Context(), path)
	return r, idx, err
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time or a duration such as 1h", s)
}

// short abbreviates a did:key for tables.
func short(did string) string {
	if len(did) > 20 {
		return did[:16] + "…"
	}
	return did
}
