package homedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("homedir: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("homedir: %s has mode %v; it must be 0600 (chmod 600 it, or delete it to make a new token)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("homedir: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("homedir: %s holds no usable token (at least %d characters); delete it to make a new one", path, MinTokenLen)
	}
	return tok, nil
}
