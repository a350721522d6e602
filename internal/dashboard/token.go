package dashboard

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

// TokenFile is the dashboard's token in the node's home (mode 0600).
const TokenFile = "dashboard.token"

// minToken is the shortest token accepted from the file.
const minToken = 32

// LoadOrCreateToken returns the token in HOME/dashboard.token, creating it
// (32 random bytes, hex, mode 0600) on first use. A file readable by others is
// refused rather than trusted.
func LoadOrCreateToken(home string) (string, error) {
	path := filepath.Join(home, TokenFile)
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
			return "", fmt.Errorf("dashboard: write %s: %w", path, werr)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("dashboard: create %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("dashboard: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("dashboard: %s has mode %v; it must be 0600 (chmod 600 it, or delete it to make a new token)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("dashboard: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minToken {
		return "", fmt.Errorf("dashboard: %s holds no usable token (at least %d characters); delete it to make a new one", path, minToken)
	}
	return tok, nil
}
