package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
)

// maxScanInput bounds stdin for scan and screen (one document, or one JSONL line).
const maxScanInput = 64 << 20

// record is one line of --jsonl input.
type record struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// peerID resolves --peer to a did:key through the peer book ("" when unset).
func peerID(cfg *config.Config, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	if p, ok := cfg.Peer(ref); ok {
		return p.ID, nil
	}
	if _, err := identity.ParseDID(ref); err != nil {
		return "", fmt.Errorf("--peer %q is neither a nickname in the peer book nor a did:key", ref)
	}
	return ref, nil
}

// eachRecord calls f for every {"id","text"} line of r.
func eachRecord(r io.Reader, f func(record) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) { // a long line: gather it in a buffer of its own
			long := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				if long = append(long, b...); len(long) > maxScanInput {
					return usagef("line %d exceeds %d bytes", line, maxScanInput)
				}
			}
			b = long
		}
		if len(b) > 0 && !(len(b) == 1 && b[0] == '\n') {
			var rec record
			if jerr := json.Unmarshal(b, &rec); jerr != nil {
				return usagef("line %d is not a JSON object with \"id\" and \"text\": %v", line, jerr)
			}
			if ferr := f(rec); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxScanInput+1))
	if err == nil && len(b) > maxScanInput {
		err = usagef("input exceeds %d bytes", maxScanInput)
	}
	return b, err
}

// scannable refuses input the sanitizer would block unread for its size: a
// dry run says so rather than report a block with no finding.
func scannable(san *sanitize.Sanitizer, n int) error {
	if n > san.MaxInputBytes() {
		return usagef("input is %d bytes; the sanitizer scans at most %d", n, san.MaxInputBytes())
	}
	return nil
}

func scanCmd(h func() string) *cobra.Command {
	var peer string
	var asJSON, jsonl bool
	c := &cobra.Command{
		Use:   "scan [--peer PEER] [--json | --jsonl]",
		Short: "dry-run the outbound sanitizer on stdin",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && jsonl {
				return usagef("--json and --jsonl are exclusive")
			}
			san, _, cfg, err := home.DryRunner(h())
			if err != nil {
				return err
			}
			defer san.Close()
			id, err := peerID(cfg, peer)
			if err != nil {
				return usageError{err}
			}
			pol := cfg.SanitizePolicy(id, "")
			subject := id
			if subject == "" {
				subject = "did:key:dry-run"
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			if jsonl {
				blocked := 0
				err := eachRecord(cmd.InOrStdin(), func(rec record) error {
					if err := scannable(san, len(rec.Text)); err != nil {
						return err
					}
					res := san.DryRun(subject, pol, []byte(rec.Text))
					if res.Action == sanitize.ActionBlock {
						blocked++
					}
					return enc.Encode(struct {
						ID string `json:"id"`
						sanitize.Result
					}{rec.ID, res})
				})
				if err != nil {
					return err
				}
				return scanBlocked(out, blocked)
			}
			in, err := readAll(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if err := scannable(san, len(in)); err != nil {
				return err
			}
			res := san.DryRun(subject, pol, in)
			blocked := 0
			if res.Action == sanitize.ActionBlock {
				blocked = -1
			}
			if asJSON {
				if err := enc.Encode(res); err != nil {
					return err
				}
				return scanBlocked(out, blocked)
			}
			fmt.Fprint(out, res.Output)
			fmt.Fprintf(cmd.ErrOrStderr(), "treaty scan: %s, %d findings\n", res.Action, len(res.Findings))
			for _, f := range res.Findings {
				fmt.Fprintf(cmd.ErrOrStderr(), "  %s (%s) at bytes %d-%d\n", f.Category, f.Rule, f.Start, f.End)
			}
			return scanBlocked(out, blocked)
		},
	}
	c.Flags().StringVar(&peer, "peer", "", "use this peer's data policy (default: the default policy)")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"action","output","findings"}`)
	c.Flags().BoolVar(&jsonl, "jsonl", false, `read {"id","text"} lines; print one result line per record`)
	return c
}

func screenCmd(h func() string) *cobra.Command {
	var peer string
	var asJSON, jsonl bool
	c := &cobra.Command{
		Use:   "screen [--peer PEER] [--json | --jsonl]",
		Short: "dry-run inbound screening on stdin",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && jsonl {
				return usagef("--json and --jsonl are exclusive")
			}
			san, scr, cfg, err := home.DryRunner(h())
			if err != nil {
				return err
			}
			san.Close()
			id, err := peerID(cfg, peer)
			if err != nil {
				return usageError{err}
			}
			pol := cfg.ScreenPolicyFor(id, "")
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			blocked := 0
			if jsonl {
				err := eachRecord(cmd.InOrStdin(), func(rec record) error {
					v := scr.Screen(pol, []byte(rec.Text))
					if v.Action == screen.ActionBlock {
						blocked++
					}
					return enc.Encode(struct {
						ID string `json:"id"`
						screen.Verdict
					}{rec.ID, v})
				})
				if err != nil {
					return err
				}
				return screenBlocked(out, blocked)
			}
			in, err := readAll(cmd.InOrStdin())
			if err != nil {
				return err
			}
			v := scr.Screen(pol, in)
			if v.Action == screen.ActionBlock {
				blocked = -1
			}
			if asJSON {
				if err := enc.Encode(v); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "%s score %.2f %v\n", v.Action, v.Score, v.Reasons)
			}
			return screenBlocked(out, blocked)
		},
	}
	c.Flags().StringVar(&peer, "peer", "", "use this peer's screening policy")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"action","score","reasons"}`)
	c.Flags().BoolVar(&jsonl, "jsonl", false, `read {"id","text"} lines; print one verdict line per record`)
	return c
}

// scanBlocked and screenBlocked turn a block verdict into exit 5 (after the
// result is printed and flushed), so scan and screen work as a CI gate.
func scanBlocked(out *bufio.Writer, n int) error {
	if n == 0 {
		return nil
	}
	if err := out.Flush(); err != nil {
		return err
	}
	return refusal.New(refusal.StageSanitize, "%s would be blocked (dry run)", records(n))
}

func screenBlocked(out *bufio.Writer, n int) error {
	if n == 0 {
		return nil
	}
	if err := out.Flush(); err != nil {
		return err
	}
	return refusal.New(refusal.StageScreen, "%s would be blocked (dry run)", records(n))
}

// records names what was blocked: the input (n < 0) or n JSONL records.
func records(n int) string {
	switch n {
	case -1:
		return "the input"
	case 1:
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}
