package audit

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// CSVHeader returns the first record of Export's "csv" format.
func CSVHeader() []string {
	return []string{
		"index", "time", "kind", "peer", "direction", "capability", "outcome", "stage",
		"request_digest", "response_digest", "content_digest", "report", "content", "evidence",
	}
}

// Export writes every entry of the log at path to w, oldest first, reading one
// snapshot without modifying the log. format is "jsonl" (one Entry JSON object
// per line, as Entry.MarshalJSON) or "csv" (RFC 4180 via encoding/csv, columns
// CSVHeader(), digests hex, content base64, report and evidence as JSON text).
// Values are exported exactly; a spreadsheet may interpret cells starting with
// '=', '+', '-' or '@' as formulas, so open exports as text.
func Export(ctx context.Context, path string, w io.Writer, format string) error {
	if format != "jsonl" && format != "csv" {
		return fmt.Errorf("audit: export format %q, want \"jsonl\" or \"csv\"", format)
	}
	db, err := openReadDB(path, 1)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := readMeta(ctx, db); err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, `SELECT idx, `+entryCols()+` FROM entries ORDER BY idx`)
	if err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	defer rows.Close()

	bw := bufio.NewWriter(w)
	var cw *csv.Writer
	var enc *json.Encoder
	if format == "csv" {
		cw = csv.NewWriter(bw)
		if err := cw.Write(CSVHeader()); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	} else {
		enc = json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
	}
	for rows.Next() {
		var idx int64
		var leaf, over sql.NullString
		var content []byte
		if err := rows.Scan(&idx, &leaf, &content, &over); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		e, err := rowEntry(uint64(idx), leaf, content, over)
		if err != nil {
			return err
		}
		if cw != nil {
			err = cw.Write(csvRecord(e))
		} else {
			err = enc.Encode(e)
		}
		if err != nil {
			return fmt.Errorf("audit: export entry %d: %w", idx, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	return nil
}

func csvRecord(e Entry) []string {
	return []string{
		strconv.FormatUint(e.Index, 10), e.Time.UTC().Format(time.RFC3339Nano), e.Kind, e.Peer,
		e.Direction, e.Capability, e.Outcome, e.Stage,
		hex.EncodeToString(e.RequestDigest), hex.EncodeToString(e.ResponseDigest), hex.EncodeToString(e.ContentDigest),
		string(e.Report), base64.StdEncoding.EncodeToString(e.Content), string(e.Evidence),
	}
}
