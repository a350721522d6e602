package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// DiskSpace is what Config.Statfs reports of the filesystem holding the log.
type DiskSpace struct {
	Free  uint64 // bytes an unprivileged process may still write
	Total uint64 // size of the filesystem
}

// KindHighWater is written by the log itself when it starts refusing entries at
// its disk high-water mark (Outcome "refusing") and when it resumes ("resumed").
const KindHighWater = "audit.high_water"

// Defaults and bounds of the space limits.
const (
	defaultMinFree      = 1 << 30 // or 5% of the filesystem, whichever is smaller
	defaultSpaceCheck   = 250 * time.Millisecond
	spaceCheckEntries   = 1024 // entries appended between two measurements at most
	minMaxBytes         = 1 << 20
	highWaterHysteresis = 32 // resume only 1/32 of the mark below (or above) it
)

// ErrHighWater is wrapped by *HighWaterError.
var ErrHighWater = errors.New("audit: disk high-water mark")

// HighWaterError refuses an entry because the log reached a space limit of its
// Config. Its text is meant for the caller whose call it refuses, e.g.
//
//	disk high-water mark: 812 MiB free < 1 GiB min_free; refusing new calls
//
// The log resumes by itself once space returns.
type HighWaterError struct {
	Free, MinFree  uint64 // free bytes on the filesystem and the minimum (MinFree 0: not checked)
	Used, MaxBytes uint64 // bytes of audit.db's pages in use and the cap (MaxBytes 0: no cap)
}

func (e *HighWaterError) Error() string {
	if e.MaxBytes > 0 && e.Used > e.MaxBytes {
		return fmt.Sprintf("disk high-water mark: audit log uses %s > %s max_bytes; refusing new calls", sizeText(e.Used), sizeText(e.MaxBytes))
	}
	return fmt.Sprintf("disk high-water mark: %s free < %s min_free; refusing new calls", sizeText(e.Free), sizeText(e.MinFree))
}

func (e *HighWaterError) Unwrap() error { return ErrHighWater }

// sizeText renders n bytes in binary units: "812 MiB", "1.5 GiB", "300 B".
func sizeText(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	if u == 0 || f == float64(int64(f)) || f >= 100 {
		return strconv.FormatFloat(f, 'f', 0, 64) + " " + units[u]
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[u]
}

// space is the writer's view of the space limits; owned by the writer goroutine.
type space struct {
	checked time.Time       // last measurement (monotonic clock)
	since   int             // entries appended since
	over    *HighWaterError // non-nil: refusing ordinary entries
}

// measure reports whether the log is over a mark. resume applies the
// hysteresis used when it is already refusing.
func (l *Log) measure(ctx context.Context, resume bool) (*HighWaterError, error) {
	var hw HighWaterError
	over := false
	margin := func(v uint64) uint64 {
		if resume {
			return v / highWaterHysteresis
		}
		return 0
	}
	if l.cfg.MaxBytes > 0 {
		used, err := l.usedBytes(ctx)
		if err != nil {
			return nil, err
		}
		hw.Used, hw.MaxBytes = used, uint64(l.cfg.MaxBytes)
		if used+margin(hw.MaxBytes) > hw.MaxBytes {
			over = true
		}
	}
	if l.cfg.MinFreeBytes >= 0 {
		ds, err := l.cfg.Statfs(filepath.Dir(l.cfg.Path))
		if err != nil {
			return nil, fmt.Errorf("audit: free space of %s: %w", filepath.Dir(l.cfg.Path), err)
		}
		minFree := uint64(l.cfg.MinFreeBytes)
		if minFree == 0 {
			minFree = min(defaultMinFree, ds.Total/20)
		}
		hw.Free, hw.MinFree = ds.Free, minFree
		if ds.Free < minFree+margin(minFree) {
			over = true
		}
	}
	if !over {
		return nil, nil
	}
	return &hw, nil
}

// usedBytes is the size of audit.db's pages in use: pages freed by pruning
// count as free, since new entries reuse them. The WAL is not counted: SQLite
// checkpoints it back every 1000 pages (about 4 MiB) and reuses it, and its
// file does not shrink, so counting it would never let pruning resume the log.
func (l *Log) usedBytes(ctx context.Context) (uint64, error) {
	var pages, free, size int64
	err := l.wconn.QueryRowContext(ctx, `SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)`).Scan(&pages, &free, &size)
	if err != nil {
		return 0, fmt.Errorf("audit: measure %s: %w", l.cfg.Path, err)
	}
	return uint64(max(pages-free, 0) * size), nil
}

// checkSpace measures when the last measurement is stale and returns the
// entry that records a change of state (nil when none). Called by the writer
// before each commit.
func (l *Log) checkSpace(ctx context.Context) *prepared {
	if l.cfg.MaxBytes == 0 && l.cfg.MinFreeBytes < 0 {
		return nil
	}
	now := time.Now()
	if !l.space.checked.IsZero() && now.Sub(l.space.checked) < l.cfg.SpaceCheckInterval && l.space.since < spaceCheckEntries {
		return nil
	}
	l.space.checked, l.space.since = now, 0
	hw, err := l.measure(ctx, l.space.over != nil)
	if err != nil {
		l.cfg.Logger.Warn("audit: cannot measure disk space; keeping the last state", "err", err)
		return nil
	}
	was := l.space.over
	l.space.over = hw
	l.overMark.Store(hw)
	var outcome string
	switch {
	case was == nil && hw != nil:
		outcome = "refusing"
		l.cfg.Logger.Error("audit: disk high-water mark reached; refusing new entries until space returns",
			"event", "audit.high_water", "reason", hw.Error(), "free", hw.Free, "min_free", hw.MinFree, "used", hw.Used, "max_bytes", hw.MaxBytes)
	case was != nil && hw == nil:
		outcome = "resumed"
		l.cfg.Logger.Warn("audit: space returned; accepting new entries again",
			"event", "audit.high_water_cleared", "was", was.Error())
		hw = was
	default:
		return nil
	}
	rep, _ := json.Marshal(map[string]uint64{"free": hw.Free, "min_free": hw.MinFree, "used": hw.Used, "max_bytes": hw.MaxBytes})
	p, err := prepare(Entry{Kind: KindHighWater, Outcome: outcome, Stage: "audit", Report: rep})
	if err != nil {
		return nil
	}
	return &p
}
