package sanitize

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// vault maps the pseudonyms issued to each peer back to their values. It
// lives in memory and, with a path, in an append-only JSON Lines file (mode
// 0600) so that a result mentioning a token can be restored after a restart.
type vault struct {
	mu     sync.Mutex
	byPeer map[string]map[string]vaultEntry // peer -> token -> entry
	f      *os.File
	path   string
}

// vaultEntry is an original value as it was before escaping for its context.
type vaultEntry struct {
	Value []byte
	Num   bool // a bare JSON number: restored without quotes when it fills a string
}

type vaultLine struct {
	Peer  string `json:"peer"`
	Token string `json:"token"`
	Value []byte `json:"value"` // base64 in the file: lossless for any bytes
	Num   bool   `json:"num,omitempty"`
}

func openVault(path string) (*vault, error) {
	v := &vault{byPeer: map[string]map[string]vaultEntry{}, path: path}
	if path == "" {
		return v, nil
	}
	if st, err := os.Stat(path); err == nil {
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("sanitize: Config.VaultPath %s has mode %v; group and others must not read it (chmod 600)", path, st.Mode().Perm())
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sanitize: open vault: %w", err)
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var l vaultLine
			if jerr := json.Unmarshal(line, &l); jerr != nil {
				f.Close()
				return nil, fmt.Errorf("sanitize: vault %s is corrupt: %w", path, jerr)
			}
			v.put(l.Peer, l.Token, vaultEntry{Value: l.Value, Num: l.Num})
		}
		// A final line without a newline is a torn write from a crash: ignored.
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("sanitize: read vault: %w", err)
		}
	}
	v.f = f
	return v, nil
}

func (v *vault) put(peer, token string, e vaultEntry) {
	m := v.byPeer[peer]
	if m == nil {
		m = map[string]vaultEntry{}
		v.byPeer[peer] = m
	}
	m[token] = e
}

func (v *vault) close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.f == nil {
		return nil
	}
	err := v.f.Sync()
	if cerr := v.f.Close(); err == nil {
		err = cerr
	}
	v.f = nil
	return err
}

// token derives the pseudonym of value for peer: HMAC-SHA256(key, peer 0
// category 0 value), truncated to 12 hex digits (48 bits).
func pseudonym(key []byte, peer string, cat Category, value []byte, long bool) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(peer))
	m.Write([]byte{0})
	m.Write([]byte(cat))
	m.Write([]byte{0})
	m.Write(value)
	sum := m.Sum(nil)
	n := 6
	if long {
		n = 16
	}
	return "<" + string(cat) + ":" + hex.EncodeToString(sum[:n]) + ">"
}

// issue returns the token for value and, when record is set, remembers it.
// Two values whose short tokens collide get the long form, so a token never
// maps to two values.
func (v *vault) issue(key []byte, peer string, cat Category, e vaultEntry, record bool) (string, error) {
	tok := pseudonym(key, peer, cat, e.Value, false)
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.byPeer[peer][tok]; ok && (!bytes.Equal(old.Value, e.Value) || old.Num != e.Num) {
		if bytes.Equal(old.Value, e.Value) {
			return tok, nil // same value, once bare and once quoted: keep the first form
		}
		tok = pseudonym(key, peer, cat, e.Value, true)
	}
	if !record {
		return tok, nil
	}
	if _, ok := v.byPeer[peer][tok]; ok {
		return tok, nil
	}
	if v.f != nil {
		line, err := json.Marshal(vaultLine{Peer: peer, Token: tok, Value: e.Value, Num: e.Num})
		if err != nil {
			return "", fmt.Errorf("sanitize: vault: %w", err)
		}
		if _, err := v.f.Write(append(line, '\n')); err != nil {
			return "", fmt.Errorf("sanitize: vault write: %w", err)
		}
	}
	v.put(peer, tok, vaultEntry{Value: bytes.Clone(e.Value), Num: e.Num})
	return tok, nil
}

func (v *vault) lookup(peer, token string) (vaultEntry, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.byPeer[peer][token]
	return e, ok
}
