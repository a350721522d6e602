//go:build unix

package audit

import "golang.org/x/sys/unix"

// statfs reports the space of the filesystem holding dir.
func statfs(dir string) (DiskSpace, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return DiskSpace{}, err
	}
	bs := uint64(st.Bsize) //nolint:unconvert // int64 or uint32 by platform
	return DiskSpace{Free: uint64(st.Bavail) * bs, Total: uint64(st.Blocks) * bs}, nil
}
