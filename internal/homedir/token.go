package homedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MinTokenLen is the shortest bearer token LoadOrCreateToken accepts from a file.
const MinTokenLen = 32

// LoadOrCreateToken returns the bearer token kept in the home's file name
// (the local surfaces' tokens: mcp.token, a2a.token, dashboard.token),
// creating it on first use as 32 random bytes in hex, mode 0600. A file that
// group or others may read or write is refused rather than trusted: the
// token is what keeps other local users out.
func LoadOrCreateToken(home, name string) (string, error) {
	path := filepath.Join(home, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		var raw [32]byte
		rand.Read(raw[:])
		tok := hex.EncodeToString(raw[:])
		_, werr := f.WriteString(tok + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return "", fmt.Errorf("homedir: write %s: %w", path, werr)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("homedir: create %s: %w", path, err)
	}
	b, err := readTokenFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("homedir: %s holds no usable token (at least %d characters); delete it to make a new one", path, MinTokenLen)
	}
	return tok, nil
}

// maxTokenFile bounds what is read of a token file.
const maxTokenFile = 4 << 10

// readTokenFile reads the token file at path, which must be a regular file
// of its own (not a symlink, which would lend another file's contents, nor a
// FIFO, whose open would block) that only its owner may read or write.
func readTokenFile(path string) ([]byte, error) {
	lst, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("homedir: %w", err)
	}
	if !lst.Mode().IsRegular() {
		return nil, fmt.Errorf("homedir: %s is not a regular file (%v); delete it to make a new token", path, lst.Mode().Type())
	}
	if lst.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("homedir: %s has mode %v; it must be 0600 (chmod 600 it, or delete it to make a new token)", path, lst.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("homedir: %w", err)
	}
	defer f.Close()
	// The file opened is the one checked, not one put in its place since.
	if st, err := f.Stat(); err != nil || !os.SameFile(lst, st) {
		return nil, fmt.Errorf("homedir: %s changed while it was read; it must be a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return nil, fmt.Errorf("homedir: read %s: %w", path, err)
	}
	return b, nil
}
