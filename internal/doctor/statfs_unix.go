//go:build unix

package doctor

import "golang.org/x/sys/unix"

func statfs(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize) //nolint:unconvert // int64 or uint32 by platform
	return uint64(st.Bavail) * bs, uint64(st.Blocks) * bs, nil
}
