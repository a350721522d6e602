package sanitize

import (
	"bufio"
	"bytes"
	"container/list"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// vault maps the pseudonyms issued to each peer back to their values. It
// lives in memory and, with a path, in an append-only JSON Lines file (mode
// 0600) so that a result mentioning a token can be restored after a restart.
//
// It is bounded per peer (see VaultLimits): an entry unused for TTL expires,
// and a peer at MaxPerPeer entries loses its least recently used one to make
// room. The file is rewritten with only the live entries when it holds more
// than twice as many lines as there are live entries.
type vault struct {
	mu     sync.Mutex
	byPeer map[string]*peerVault
	values map[string]valueRef // lowercased vaultForms of every live value
	// formLens counts the stored forms of each length, so that a scan
	// looks up only words of a length some form has.
	formLens [maxVaultWord + 1]int32
	// keys counts the stored forms per vaultKey, and keySet has the bit of
	// each key counted: a word whose key has no bit is no form, and is not
	// lowercased and looked up. The set is small enough to stay in cache.
	keys   *[1 << vaultKeyBits]int32
	keySet [1 << vaultKeyBits / 64]uint64
	lim    VaultLimits
	now    func() time.Time
	f      *os.File
	path   string
	lines  int // lines in the file
	live   int // entries in memory
}

// peerVault is one peer's entries, most recently used at the front.
type peerVault struct {
	byTok map[string]*list.Element // of *vaultItem
	lru   list.List
}

type vaultItem struct {
	token string
	e     vaultEntry
	last  time.Time
}

type valueRef struct {
	cat Category
	n   int
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
	At    int64  `json:"at,omitempty"` // last use, Unix seconds; absent in old files: load time
}

// VaultLimits bound the pseudonym vault per peer.
type VaultLimits struct {
	// MaxPerPeer is the most entries kept per peer; zero means 100000;
	// allowed [16, 10000000]. When a peer is full its least recently used
	// entry is dropped: a token issued for it can no longer be restored
	// and comes back to the local agent as the token.
	MaxPerPeer int
	// TTL drops an entry not issued or restored for this long; zero means
	// 30 days; allowed [1 minute, 10 years].
	TTL time.Duration
}

const (
	defaultVaultMax = 100_000
	defaultVaultTTL = 30 * 24 * time.Hour
)

func (l VaultLimits) withDefaults() (VaultLimits, error) {
	if l.MaxPerPeer == 0 {
		l.MaxPerPeer = defaultVaultMax
	}
	if l.TTL == 0 {
		l.TTL = defaultVaultTTL
	}
	if l.MaxPerPeer < 16 || l.MaxPerPeer > 10_000_000 {
		return l, fmt.Errorf("sanitize: Config.Vault.MaxPerPeer %d outside [16, 10000000]", l.MaxPerPeer)
	}
	if l.TTL < time.Minute || l.TTL > 10*365*24*time.Hour {
		return l, fmt.Errorf("sanitize: Config.Vault.TTL %v outside [1m, 87600h]", l.TTL)
	}
	return l, nil
}

func openVault(path string, lim VaultLimits, now func() time.Time) (*vault, error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	v := &vault{byPeer: map[string]*peerVault{}, values: map[string]valueRef{}, path: path, lim: lim, now: now}
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
	loaded := now()
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var l vaultLine
			if jerr := json.Unmarshal(line, &l); jerr != nil {
				f.Close()
				return nil, fmt.Errorf("sanitize: vault %s is corrupt: %w", path, jerr)
			}
			at := loaded
			if l.At > 0 {
				at = time.Unix(l.At, 0)
			}
			v.lines++
			v.put(l.Peer, l.Token, vaultEntry{Value: l.Value, Num: l.Num}, at)
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
	v.expire(loaded)
	if err := v.compactIfSparse(); err != nil {
		f.Close()
		return nil, err
	}
	return v, nil
}

// put stores an entry as the peer's most recently used, dropping the least
// recently used ones beyond MaxPerPeer. Callers hold mu (or own v).
func (v *vault) put(peer, token string, e vaultEntry, at time.Time) {
	pv := v.byPeer[peer]
	if pv == nil {
		pv = &peerVault{byTok: map[string]*list.Element{}}
		v.byPeer[peer] = pv
	}
	if el, ok := pv.byTok[token]; ok {
		v.unref(el.Value.(*vaultItem))
		it := el.Value.(*vaultItem)
		it.e, it.last = e, at
		v.ref(token, e)
		pv.lru.MoveToFront(el)
		return
	}
	pv.byTok[token] = pv.lru.PushFront(&vaultItem{token: token, e: e, last: at})
	v.ref(token, e)
	v.live++
	for pv.lru.Len() > v.lim.MaxPerPeer {
		v.drop(peer, pv, pv.lru.Back())
	}
}

func (v *vault) drop(peer string, pv *peerVault, el *list.Element) {
	it := el.Value.(*vaultItem)
	pv.lru.Remove(el)
	delete(pv.byTok, it.token)
	v.unref(it)
	v.live--
	if pv.lru.Len() == 0 {
		delete(v.byPeer, peer)
	}
}

// expire drops every entry last used more than TTL before now. Entries are
// in order of use, so only the expired tail of each peer is visited.
func (v *vault) expire(now time.Time) {
	cut := now.Add(-v.lim.TTL)
	for peer, pv := range v.byPeer {
		for el := pv.lru.Back(); el != nil && el.Value.(*vaultItem).last.Before(cut); el = pv.lru.Back() {
			v.drop(peer, pv, el)
			if v.byPeer[peer] == nil {
				break
			}
		}
	}
}

func (v *vault) ref(token string, e vaultEntry) {
	cat := tokenCategory(token)
	for _, f := range vaultForms(e.Value) {
		if len(f) > maxVaultWord {
			continue
		}
		r := v.values[f]
		if r.n == 0 {
			v.formLens[len(f)]++
			if v.keys == nil {
				v.keys = new([1 << vaultKeyBits]int32)
			}
			k := vaultKey([]byte(f))
			if v.keys[k]++; v.keys[k] == 1 {
				v.keySet[k/64] |= 1 << (k % 64)
			}
		}
		r.cat, r.n = cat, r.n+1
		v.values[f] = r
	}
}

func (v *vault) unref(it *vaultItem) {
	for _, f := range vaultForms(it.e.Value) {
		r, ok := v.values[f]
		if !ok {
			continue
		}
		if r.n <= 1 {
			delete(v.values, f)
			v.formLens[len(f)]--
			k := vaultKey([]byte(f))
			if v.keys[k]--; v.keys[k] == 0 {
				v.keySet[k/64] &^= 1 << (k % 64)
			}
			continue
		}
		r.n--
		v.values[f] = r
	}
}

// compactIfSparse rewrites the file with only the live entries when dead
// lines (expired, evicted or duplicated) outnumber live ones, so the file
// stays within about twice the bound. Callers hold mu (or own v).
func (v *vault) compactIfSparse() error {
	if v.f == nil || v.lines <= 2*v.live+1024 {
		return nil
	}
	tmp := v.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("sanitize: compact vault: %w", err)
	}
	w := bufio.NewWriter(f)
	n := 0
	for peer, pv := range v.byPeer {
		for el := pv.lru.Back(); el != nil; el = el.Prev() {
			it := el.Value.(*vaultItem)
			line, err := json.Marshal(vaultLine{Peer: peer, Token: it.token, Value: it.e.Value, Num: it.e.Num, At: it.last.Unix()})
			if err != nil {
				f.Close()
				return fmt.Errorf("sanitize: compact vault: %w", err)
			}
			w.Write(line)
			w.WriteByte('\n')
			n++
		}
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, v.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sanitize: compact vault: %w", err)
	}
	nf, err := os.OpenFile(v.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("sanitize: compact vault: %w", err)
	}
	v.f.Close()
	v.f = nf
	v.lines = n
	return nil
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

// tokenMAC derives pseudonyms under one key. It keeps HMAC states, with
// a buffer for their input, for reuse (a reset state costs no key
// schedule); safe for concurrent use.
type tokenMAC struct{ pool sync.Pool }

type macState struct {
	h   hash.Hash
	buf []byte
}

func newTokenMAC(key []byte) *tokenMAC {
	k := bytes.Clone(key)
	t := &tokenMAC{}
	t.pool.New = func() any { return &macState{h: hmac.New(sha256.New, k)} }
	return t
}

// pseudonym derives the pseudonym of value for peer: HMAC-SHA256(key,
// peer 0 category 0 value), truncated to 12 hex digits (48 bits), or to
// 32 for the long form.
func (t *tokenMAC) pseudonym(peer string, cat Category, value []byte, long bool) string {
	m := t.pool.Get().(*macState)
	m.h.Reset()
	m.buf = append(append(append(append(append(m.buf[:0], peer...), 0), cat...), 0), value...)
	m.h.Write(m.buf)
	var sum [sha256.Size]byte
	m.h.Sum(sum[:0])
	if cap(m.buf) <= 4<<10 {
		t.pool.Put(m) // a long value's buffer is not kept
	}
	n := 6
	if long {
		n = 16
	}
	var tok strings.Builder
	tok.Grow(len(cat) + 3 + 2*n)
	tok.WriteByte('<')
	tok.WriteString(string(cat))
	tok.WriteByte(':')
	var hx [32]byte
	hex.Encode(hx[:], sum[:n])
	tok.Write(hx[:2*n])
	tok.WriteByte('>')
	return tok.String()
}

// issue returns the token for value and, when record is set, remembers it.
// Two values whose short tokens collide get the long form, so a token never
// maps to two values.
func (v *vault) issue(mac *tokenMAC, peer string, cat Category, e vaultEntry, record bool) (string, error) {
	tok := mac.pseudonym(peer, cat, e.Value, false)
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if old, ok := v.get(peer, tok); ok && (!bytes.Equal(old.Value, e.Value) || old.Num != e.Num) {
		if bytes.Equal(old.Value, e.Value) {
			v.touch(peer, tok, now)
			return tok, nil // same value, once bare and once quoted: keep the first form
		}
		tok = mac.pseudonym(peer, cat, e.Value, true)
	}
	if !record {
		return tok, nil
	}
	if _, ok := v.get(peer, tok); ok {
		v.touch(peer, tok, now)
		return tok, nil
	}
	if v.f != nil {
		line, err := json.Marshal(vaultLine{Peer: peer, Token: tok, Value: e.Value, Num: e.Num, At: now.Unix()})
		if err != nil {
			return "", fmt.Errorf("sanitize: vault: %w", err)
		}
		if _, err := v.f.Write(append(line, '\n')); err != nil {
			return "", fmt.Errorf("sanitize: vault write: %w", err)
		}
		v.lines++
	}
	v.put(peer, tok, vaultEntry{Value: bytes.Clone(e.Value), Num: e.Num}, now)
	v.expire(now)
	if err := v.compactIfSparse(); err != nil {
		return "", err
	}
	return tok, nil
}

func (v *vault) get(peer, token string) (vaultEntry, bool) {
	pv := v.byPeer[peer]
	if pv == nil {
		return vaultEntry{}, false
	}
	el, ok := pv.byTok[token]
	if !ok {
		return vaultEntry{}, false
	}
	return el.Value.(*vaultItem).e, true
}

// touch marks an entry used now (in memory; the file keeps the time it was
// issued until the next compaction).
func (v *vault) touch(peer, token string, now time.Time) {
	if pv := v.byPeer[peer]; pv != nil {
		if el, ok := pv.byTok[token]; ok {
			el.Value.(*vaultItem).last = now
			pv.lru.MoveToFront(el)
		}
	}
}

// lookup finds a live entry and marks it used.
func (v *vault) lookup(peer, token string) (vaultEntry, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	e, ok := v.get(peer, token)
	if !ok {
		return vaultEntry{}, false
	}
	if pv := v.byPeer[peer]; pv.byTok[token].Value.(*vaultItem).last.Before(now.Add(-v.lim.TTL)) {
		v.drop(peer, pv, pv.byTok[token])
		return vaultEntry{}, false
	}
	v.touch(peer, token, now)
	return e, true
}
