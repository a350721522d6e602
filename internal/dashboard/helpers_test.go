package dashboard_test

import (
	"strconv"

	"github.com/treaty-dev/treaty/internal/audit"
)

func auditNewest() audit.Filter {
	return audit.Filter{Reverse: true, Limit: 1, Kind: audit.KindCallCompleted}
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }
