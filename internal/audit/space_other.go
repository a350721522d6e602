//go:build !unix

package audit

import "errors"

// statfs is not available here: set Config.MinFreeBytes negative, or give
// Config.Statfs.
func statfs(string) (DiskSpace, error) {
	return DiskSpace{}, errors.New("free space is not measurable on this platform")
}
