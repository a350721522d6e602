package sanitize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Finding is one detected value: its category, the rule that found it, and
// its byte range [Start, End) in the scanned input.
type Finding struct {
	Category Category `json:"category"`
	Rule     string   `json:"rule"`
	Start    int      `json:"start"`
	End      int      `json:"end"`
}

// Config configures a Sanitizer. PseudonymKey is required.
type Config struct {
	// PseudonymKey is the HMAC-SHA256 key of pseudonyms; required, 32 bytes.
	// Keep it secret and stable: it makes tokens deterministic per peer.
	PseudonymKey []byte
	// VaultPath is a file where the pseudonym -> value mapping persists
	// (created with mode 0600; a file group or others can read is refused).
	// Empty keeps the mapping in memory only, so tokens issued before a
	// restart cannot be restored after it.
	VaultPath string
	// MaxInputBytes bounds Apply and DryRun; zero means 8 MiB; allowed [1 KiB, 1 GiB].
	MaxInputBytes int
	// RulesTOML replaces gitleaks' default rule set (DefaultRulesTOML) with
	// another gitleaks configuration, e.g. a newer upstream file. Empty: the default.
	RulesTOML string
	// Canaries are values the node must never send (its identity key, an
	// operator's sanitize.canaries), each at least 8 bytes. They are found
	// as is, in hex, base64 (any alphabet, padding or alignment), base32
	// (either case, any alignment), URL and JSON escapes, and always block
	// (CategoryCanary), whatever the policy.
	Canaries [][]byte
	// Vault bounds the pseudonym vault per peer.
	Vault VaultLimits
	// Now is the clock of vault expiry; nil means time.Now.
	Now func() time.Time
}

const defaultMaxInput = 8 << 20

// MaxInputBytes is the most Apply and DryRun scan (Config.MaxInputBytes).
func (s *Sanitizer) MaxInputBytes() int { return s.maxInput }

// ErrTooLarge is returned by Apply for input over Config.MaxInputBytes.
var ErrTooLarge = errors.New("sanitize: input exceeds MaxInputBytes")

// Sanitizer finds secrets and PII in outbound data and applies a Policy to
// them. It compiles its rules once in New and is safe for concurrent use.
type Sanitizer struct {
	rules    []glRule
	ac       *acMatcher
	triggers [][]trigger // per prefilter pattern
	maxInput int
	vault    *vault
	canaries *canaryIndex
	mac      *tokenMAC // pseudonyms
	pool     sync.Pool
	toks     sync.Pool // *[]jsonTok: rewrite's token list, reused across calls
}

type triggerKind uint8

const (
	trigGitleaks triggerKind = iota
	trigProvider
	trigKey
	trigProse
	trigMySQL
	trigCLIAuth
	trigSQL
	trigJWK
	trigPPK
	trigSAS
	trigDiscord
	trigSpelled
	trigCookie
	trigCurl
)

type trigger struct {
	kind triggerKind
	arg  int
	hook glHook
}

// New compiles the detectors and opens the vault.
func New(cfg Config) (*Sanitizer, error) {
	if len(cfg.PseudonymKey) != 32 {
		return nil, fmt.Errorf("sanitize: Config.PseudonymKey is %d bytes, want 32", len(cfg.PseudonymKey))
	}
	if cfg.MaxInputBytes == 0 {
		cfg.MaxInputBytes = defaultMaxInput
	}
	if m := cfg.MaxInputBytes; m < 1<<10 || m > 1<<30 {
		return nil, fmt.Errorf("sanitize: Config.MaxInputBytes %d outside [1024, 1073741824]", m)
	}
	var set gitleaksSet
	var err error
	if cfg.RulesTOML == "" {
		set, err = defaultGitleaks()
	} else {
		set.rules, set.keywords, err = loadGitleaks(cfg.RulesTOML)
	}
	if err != nil {
		return nil, err
	}
	rules, keywords := set.rules, set.keywords
	s := &Sanitizer{
		rules:    rules,
		maxInput: cfg.MaxInputBytes,
		mac:      newTokenMAC(cfg.PseudonymKey),
	}
	// One prefilter for everything: gitleaks keywords, provider literals, key words.
	index := map[string]int{}
	var pats []string
	add := func(lit string, t trigger) {
		i, ok := index[lit]
		if !ok {
			i = len(pats)
			index[lit] = i
			pats = append(pats, lit)
			s.triggers = append(s.triggers, nil)
		}
		s.triggers[i] = append(s.triggers[i], t)
	}
	kws := make([]string, 0, len(keywords))
	for k := range keywords {
		kws = append(kws, k)
	}
	slices.Sort(kws)
	for _, k := range kws {
		for _, h := range keywords[k] {
			add(k, trigger{kind: trigGitleaks, hook: h})
		}
	}
	for i, p := range providers {
		add(p.lit, trigger{kind: trigProvider, arg: i})
	}
	for _, k := range keyLiterals {
		add(k, trigger{kind: trigKey})
	}
	for _, k := range passwordNouns {
		add(k, trigger{kind: trigProse})
	}
	add("mysql", trigger{kind: trigMySQL})
	for _, k := range cliAuthTools {
		add(k, trigger{kind: trigCLIAuth})
	}
	for _, k := range sqlPasswordWords {
		add(k, trigger{kind: trigSQL})
	}
	add(`"kty"`, trigger{kind: trigJWK})
	add(`\"kty\"`, trigger{kind: trigJWK})
	add("private-lines:", trigger{kind: trigPPK})
	add("sig=", trigger{kind: trigSAS})
	add("/api/webhooks/", trigger{kind: trigDiscord})
	add("cookie", trigger{kind: trigCookie})
	add(curlShortFlag, trigger{kind: trigCookie})
	add("curl", trigger{kind: trigCurl})
	for _, k := range []string{"[at]", "(at)", "{at}"} {
		add(k, trigger{kind: trigSpelled})
	}
	s.ac = newACMatcher(pats)
	if s.canaries, err = newCanaryIndex(cfg.Canaries); err != nil {
		return nil, err
	}
	s.vault, err = openVault(cfg.VaultPath, cfg.Vault, cfg.Now)
	if err != nil {
		return nil, err
	}
	s.pool.New = func() any { return new(scanner) }
	s.toks.New = func() any {
		t := make([]jsonTok, 0, 64) // a typical call's strings and numbers, without regrowing
		return &t
	}
	return s, nil
}

// Close releases the vault file. The Sanitizer must not be used afterwards.
func (s *Sanitizer) Close() error { return s.vault.close() }

// RuleCount is the number of gitleaks rules loaded (222 minus the path-only
// rule for the default set).
func (s *Sanitizer) RuleCount() int { return len(s.rules) }

// scanner holds the state of one Scan.
type scanner struct {
	s         *Sanitizer
	data      []byte
	hits      []Finding
	ac        []acHit
	acBufs    [acWays - 1][]acHit // the keyword search's later walks, reused across scans
	b64buf    []byte
	view      []byte  // scanDecodedView's buffers
	viewAt    []int32 //
	viewMarks []int32 //
	reach     reachScratch
	bt        btScratch
	glWins    []glWin
	glTried   []int32
	glClear   []leadBlock
	leadRuns  int // anchored runs of lead rules in this scan (leadClearAfter)
	semi      []semiTask
	tableEnd  int // bytes before it were already looked at as a table (csvHeader)
	numDone   int
	v6Done    int
	pemDone   int
	cliDone   [2]int // cliAuthHit: the end of the last command line read, per tool
	sqlDone   int    // sqlHit: the end of the last SET PASSWORD statement read
	jwkDone   int    // jwkHit: the end of the last JSON Web Key read
	jwk       jwkScan
	ppkDone   int  // ppkHit: the end of the last PuTTY key lines read
	sasDone   int  // sasSigHit: the end of the last query read
	spelled   bool // the input spells out an "at" ([at], (at), {at}): scanDecodedView reads them
	lastKS    int
	lastKE    int
	depth     int
	ctx       context.Context // nil: unbounded
	stop      error           // why the scan halted (ctx's error), or nil
	tick      uint32
	hitIdx    hitIndex // findings by input bucket (see indexHits)
	hitN      int      // hits indexed so far
	parity    bool     // gitleaks rules only, without this package's extra filters (tests)

	cookieDone int // cookieHit: the end of the last cookie header read
	curlAt     int // curlHit: the last "curl" word, and the end of its line
	curlNL     int
}

func (sc *scanner) add(start, end int, cat Category, rule string) {
	sc.hits = append(sc.hits, Finding{Category: cat, Rule: rule, Start: start, End: end})
}

// Scan reports what the detectors find in data: sorted by Start,
// non-overlapping (overlapping findings are merged into one that spans them
// all and keeps the most specific category). Offsets are bytes into data.
// Scan reads all of data; callers bound its size (Apply refuses input over
// MaxInputBytes).
func (s *Sanitizer) Scan(data []byte) []Finding {
	fs, _ := s.scan(context.Background(), data, 0)
	return fs
}

// ErrDeadline is returned when ctx ends before the content is scanned: the
// caller's deadline bounds the work, and content that cannot be checked in
// time is not sent.
var ErrDeadline = errors.New("sanitize: content too large to scan before the deadline")

// ScanContext is Scan bounded by ctx: when ctx ends first it returns an
// error wrapping ErrDeadline and ctx's error, and no findings.
func (s *Sanitizer) ScanContext(ctx context.Context, data []byte) ([]Finding, error) {
	return s.scan(ctx, data, 0)
}

func (s *Sanitizer) scan(ctx context.Context, data []byte, depth int) ([]Finding, error) {
	sc := s.pool.Get().(*scanner)
	tried := sc.glTried
	for i := range tried {
		tried[i] = -1
	}
	idx := sc.hitIdx
	idx.reset()
	*sc = scanner{ctx: ctx, s: s, data: data, hitIdx: idx, hits: sc.hits[:0], ac: sc.ac[:0], acBufs: sc.acBufs, b64buf: sc.b64buf, view: sc.view, viewAt: sc.viewAt, viewMarks: sc.viewMarks, reach: sc.reach, bt: sc.bt, semi: sc.semi[:0], glWins: sc.glWins[:0], glTried: tried, lastKS: -1, lastKE: -1, depth: depth}
	defer func() {
		sc.data, sc.ctx = nil, nil
		s.pool.Put(sc)
	}()
	sc.ac = s.ac.hitsScratch(data, sc.ac[:0], &sc.acBufs)
	for _, h := range sc.ac {
		if sc.halted() {
			return nil, sc.stopErr()
		}
		pat, start := int(h.pat), int(h.start)
		for _, t := range s.triggers[pat] {
			switch t.kind {
			case trigGitleaks:
				sc.gitleaksHit(t.hook, start, start+int(s.ac.patLens[pat]))
			case trigProvider:
				providers[t.arg].match(sc, start)
			case trigKey:
				sc.keyHit(start, int(s.ac.patLens[pat]))
			case trigProse:
				sc.proseHit(start, int(s.ac.patLens[pat]))
			case trigMySQL:
				sc.mysqlHit(start, int(s.ac.patLens[pat]))
			case trigCLIAuth:
				sc.cliAuthHit(start, int(s.ac.patLens[pat]))
			case trigSQL:
				sc.sqlHit(start, int(s.ac.patLens[pat]))
			case trigJWK:
				sc.jwkHit(start)
			case trigPPK:
				sc.ppkHit(start, int(s.ac.patLens[pat]))
			case trigSAS:
				sc.sasSigHit(start)
			case trigDiscord:
				sc.discordHookHit(start, int(s.ac.patLens[pat]))
			case trigSpelled:
				sc.spelled = true
			case trigCookie:
				sc.cookieHit(start, int(s.ac.patLens[pat]))
			case trigCurl:
				sc.curlHit(start)
			}
		}
	}
	for _, stage := range []func(){sc.runSemiTasks, sc.runGitleaks, sc.scanPII, sc.scanCanaries, sc.scanVaultValues} {
		if sc.halted() {
			return nil, sc.stopErr()
		}
		stage()
	}
	if depth < 2 {
		sc.scanBase64()
		if !sc.halted() {
			sc.scanDecodedView()
		}
		if !sc.halted() {
			sc.scanSepHex()
		}
	}
	if depth == 0 && !sc.halted() {
		sc.scanLineJoins()
	}
	if sc.halted() {
		return nil, sc.stopErr()
	}
	return merge(dropPublicIDs(data, sc.hits)), nil
}

// halted reports whether the scan's context has ended. It looks at the
// context once in 64 calls, so hot loops can ask every iteration.
func (sc *scanner) halted() bool {
	if sc.stop != nil {
		return true
	}
	if sc.ctx == nil {
		return false
	}
	sc.tick++
	if sc.tick&63 != 1 {
		return false
	}
	if err := sc.ctx.Err(); err != nil {
		sc.stop = err
		return true
	}
	return false
}

func (sc *scanner) stopErr() error {
	if errors.Is(sc.stop, ErrDeadline) {
		return sc.stop // a nested scan's
	}
	return fmt.Errorf("%w (%d bytes): %w", ErrDeadline, len(sc.data), sc.stop)
}

// merge sorts findings and merges overlapping ones: the union of their ranges,
// with the highest-priority category (the longer finding on a tie).
func merge(hits []Finding) []Finding {
	if len(hits) == 0 {
		return nil
	}
	slices.SortFunc(hits, func(a, b Finding) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out := make([]Finding, 0, len(hits))
	cur := hits[0]
	for _, h := range hits[1:] {
		if h.Start < cur.End {
			better := h.Category.priority() > cur.Category.priority() ||
				(h.Category.priority() == cur.Category.priority() && h.End-h.Start > cur.End-cur.Start)
			if better {
				cur.Category, cur.Rule = h.Category, h.Rule
			}
			if h.End > cur.End {
				cur.End = h.End
			}
			continue
		}
		out = append(out, cur)
		cur = h
	}
	return append(out, cur)
}

// gitleaksOnly runs only the gitleaks rules, with gitleaks' own filters and
// none of this package's, unmerged. The parity test compares it with
// gitleaks' detector to check that running rules only near their keywords
// loses nothing.
func (s *Sanitizer) gitleaksOnly(data []byte) []Finding {
	sc := &scanner{s: s, data: data, lastKS: -1, lastKE: -1, parity: true}
	for _, h := range s.ac.hits(data, nil) {
		for _, t := range s.triggers[h.pat] {
			if t.kind == trigGitleaks {
				sc.gitleaksHit(t.hook, int(h.start), int(h.start)+int(s.ac.patLens[h.pat]))
			}
		}
	}
	sc.runSemiTasks()
	sc.runGitleaks()
	// gitleaks' filter(): a generic finding gives way to another rule's
	// finding on the same line whose secret contains it.
	var out []Finding
	for _, f := range sc.hits {
		keep := true
		if strings.Contains(f.Rule, "generic") {
			ls, _ := lineBounds(data, f.Start)
			for _, g := range sc.hits {
				gs, _ := lineBounds(data, g.Start)
				if g.Rule != f.Rule && !strings.Contains(g.Rule, "generic") && gs == ls &&
					bytes.Contains(data[g.Start:g.End], data[f.Start:f.End]) {
					keep = false
					break
				}
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	return out
}
