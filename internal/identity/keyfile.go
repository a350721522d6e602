package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// keyFileTag starts every identity.key so that no one mistakes it for a public key.
const keyFileTag = "TREATY-ED25519-PRIVATE-KEY"

// ErrKeyFileMode is returned when group or others may read or write identity.key.
var ErrKeyFileMode = errors.New("identity: key file is readable or writable by group or others; run chmod 600 on it")

// MarshalKeyFile encodes k as "TREATY-ED25519-PRIVATE-KEY <base64 seed>\n".
func MarshalKeyFile(k PrivateKey) ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("identity: cannot marshal zero private key")
	}
	return []byte(keyFileTag + " " + base64.StdEncoding.EncodeToString(k.raw().Seed()) + "\n"), nil
}

// ParseKeyFile decodes MarshalKeyFile's output. Errors never include key bytes.
func ParseKeyFile(b []byte) (PrivateKey, error) {
	if len(b) > 1024 {
		return PrivateKey{}, errors.New("identity: key file larger than 1 KiB")
	}
	line := strings.TrimSpace(string(b))
	tag, enc, ok := strings.Cut(line, " ")
	if !ok || tag != keyFileTag {
		return PrivateKey{}, fmt.Errorf("identity: key file does not start with %q", keyFileTag)
	}
	seed, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return PrivateKey{}, errors.New("identity: key file body is not valid base64")
	}
	if len(seed) != ed25519.SeedSize {
		return PrivateKey{}, fmt.Errorf("identity: key file seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return newPrivateKey(ed25519.NewKeyFromSeed(seed)), nil
}

// WriteKeyFile writes k to path with mode 0600, refusing to overwrite.
func WriteKeyFile(path string, k PrivateKey) error {
	b, err := MarshalKeyFile(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("identity: write key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("identity: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("identity: write key file: %w", err)
	}
	return f.Close()
}

// LoadKeyFile reads path, refusing a file that group or others can read.
func LoadKeyFile(path string) (PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return PrivateKey{}, fmt.Errorf("identity: no key at %s (run 'treaty init' first): %w", path, err)
		}
		return PrivateKey{}, fmt.Errorf("identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return PrivateKey{}, fmt.Errorf("%w: %s has mode %#o", ErrKeyFileMode, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("identity: %w", err)
	}
	k, err := ParseKeyFile(bytes.TrimSpace(b))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return k, nil
}
