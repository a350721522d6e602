package sanitize

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for vault expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func lineCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// Issue 10, defect 3: the vault holds at most MaxPerPeer entries per peer,
// drops the least recently used when full, and its file stays bounded.
func TestVaultBoundsPerPeer(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "vault.jsonl")
	cfg := Config{PseudonymKey: testKey, VaultPath: path, Vault: VaultLimits{MaxPerPeer: 16, TTL: time.Hour}, Now: clk.now}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pol := Policy{PII: ActionPseudonymize}
	var outs [][]byte
	for i := range 3000 {
		c, err := s.Apply(peerA, pol, fmt.Appendf(nil, "mail user%d@example.org", i))
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, c.Bytes())
	}
	keep, err := s.Apply(peerB, pol, []byte("mail keep@example.org"))
	if err != nil {
		t.Fatal(err)
	}
	// Only the 16 most recent of peer A restore; peer B's entry is untouched.
	for i, o := range outs {
		back := s.Restore(peerA, o)
		restored := !bytes.Contains(back, []byte("<email:"))
		if want := i >= len(outs)-16; restored != want {
			t.Fatalf("entry %d restored=%v, want %v", i, restored, want)
		}
	}
	if back := s.Restore(peerB, keep.Bytes()); string(back) != "mail keep@example.org" {
		t.Fatalf("peer B lost its entry to peer A's: %s", back)
	}
	if n := lineCount(t, path); n > 2*17+1024+1 {
		t.Fatalf("vault file has %d lines for 17 live entries", n)
	}
	s.Close()
	// After a restart the same entries restore, and the file was not rewritten larger.
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if back := s2.Restore(peerA, outs[len(outs)-1]); strings.Contains(string(back), "<email:") {
		t.Fatalf("latest entry lost across restart: %s", back)
	}
	if back := s2.Restore(peerA, outs[0]); !strings.Contains(string(back), "<email:") {
		t.Fatal("an evicted entry came back after restart")
	}
	s2.Close()
}

// Entries expire TTL after their last use, in memory and across restarts.
func TestVaultBoundsExpire(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "vault.jsonl")
	cfg := Config{PseudonymKey: testKey, VaultPath: path, Vault: VaultLimits{TTL: time.Hour}, Now: clk.now}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := s.Apply(peerA, scrub, []byte("a old@example.org"))
	used, _ := s.Apply(peerA, scrub, []byte("a used@example.org"))
	clk.add(40 * time.Minute)
	if back := s.Restore(peerA, used.Bytes()); string(back) != "a used@example.org" {
		t.Fatalf("restore within TTL: %s", back)
	}
	clk.add(40 * time.Minute) // old: 80 min since use; used: 40 min
	if back := s.Restore(peerA, old.Bytes()); string(back) != string(old.Bytes()) {
		t.Fatalf("expired entry restored: %s", back)
	}
	if back := s.Restore(peerA, used.Bytes()); string(back) != "a used@example.org" {
		t.Fatalf("recently used entry expired: %s", back)
	}
	s.Close()
	clk.add(2 * time.Hour)
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if back := s2.Restore(peerA, used.Bytes()); string(back) != string(used.Bytes()) {
		t.Fatalf("entry past TTL restored after restart: %s", back)
	}
}

func TestVaultLimitsValidated(t *testing.T) {
	for _, l := range []VaultLimits{{MaxPerPeer: 3}, {MaxPerPeer: 20_000_000}, {TTL: time.Second}} {
		if _, err := New(Config{PseudonymKey: testKey, Vault: l}); err == nil || !strings.Contains(err.Error(), "Config.Vault.") {
			t.Errorf("%+v: err %v, want one naming Config.Vault", l, err)
		}
	}
}

// A reused HMAC state gives the token a fresh one gives, every time.
func TestTokenMACReuse(t *testing.T) {
	mac := newTokenMAC(testKey)
	for i := 0; i < 50; i++ {
		v := []byte(fmt.Sprintf("user%d@example.com", i%7))
		m := hmac.New(sha256.New, testKey)
		m.Write([]byte("did:key:peer\x00email\x00"))
		m.Write(v)
		sum := m.Sum(nil)
		want := "<email:" + hex.EncodeToString(sum[:6]) + ">"
		if got := mac.pseudonym("did:key:peer", CategoryEmail, v, false); got != want {
			t.Fatalf("call %d: %s, want %s", i, got, want)
		}
		if got, want := mac.pseudonym("did:key:peer", CategoryEmail, v, true), "<email:"+hex.EncodeToString(sum[:16])+">"; got != want {
			t.Fatalf("call %d, long form: %s, want %s", i, got, want)
		}
	}
}
