package main

import (
	"io"
	"io/fs"
	"os"
)

// openFlagFile opens the regular file a flag names. Anything else is refused
// before it is opened: a FIFO would block the open, a device such as
// /dev/zero would never end.
func openFlagFile(flag, path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	if !st.Mode().IsRegular() {
		return nil, usagef("%s %s: not a regular file (%s)", flag, path, fileKind(st.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	return f, nil
}

// readFlagFile reads the regular file a flag names, refusing one over max bytes.
func readFlagFile(flag, path string, max int64) ([]byte, error) {
	f, err := openFlagFile(flag, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	if int64(len(b)) > max {
		return nil, usagef("%s %s: over %d bytes", flag, path, max)
	}
	return b, nil
}

// fileHead returns up to n bytes from the start of the regular file a flag names.
func fileHead(flag, path string, n int) ([]byte, error) {
	f, err := openFlagFile(flag, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, usagef("%s: read %s: %v", flag, path, err)
	}
	return b[:m], nil
}

// fileKind names what a path that is not a regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "another kind of file"
}
