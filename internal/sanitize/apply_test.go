package sanitize

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

func peerID(seed byte) string {
	k, err := identity.FromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		panic(err)
	}
	return k.Public().String()
}

var (
	peerA = peerID(1)
	peerB = peerID(2)
	// scrub redacts secrets and pseudonymizes PII, so Apply always produces output.
	scrub = Policy{Secrets: ActionRedact, PII: ActionPseudonymize}
)

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{}},
		{"short key", Config{PseudonymKey: make([]byte, 16)}},
		{"max input too small", Config{PseudonymKey: testKey, MaxInputBytes: 10}},
		{"max input too large", Config{PseudonymKey: testKey, MaxInputBytes: 2 << 30}},
		{"bad rules", Config{PseudonymKey: testKey, RulesTOML: "[[rules]]\nid = 'x'\nregex = '('\nkeywords = ['x']\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := New(tc.cfg); err == nil {
				s.Close()
				t.Fatal("New accepted a bad config")
			}
		})
	}
	s := newTest(t)
	if n := s.RuleCount(); n != 221 {
		t.Errorf("RuleCount = %d, want 221 (gitleaks' 222 default rules minus the path-only one)", n)
	}
}

func TestPolicy(t *testing.T) {
	var zero Policy
	if zero.ActionFor(CategoryGitHubToken) != ActionBlock || zero.ActionFor(CategoryEmail) != ActionPseudonymize {
		t.Error("zero Policy is not the default (secrets block, PII pseudonymize)")
	}
	if d := DefaultPolicy(); d.ActionFor(CategoryIPv4) != ActionPseudonymize || d.ActionFor(CategorySecret) != ActionBlock {
		t.Error("DefaultPolicy is wrong")
	}
	p := Policy{PII: ActionRedact, Categories: map[Category]Action{CategoryIPv4: ActionAllow, CategoryJWT: ActionRedact}}
	if p.ActionFor(CategoryIPv4) != ActionAllow || p.ActionFor(CategoryEmail) != ActionRedact ||
		p.ActionFor(CategoryJWT) != ActionRedact || p.ActionFor(CategoryPrivateKey) != ActionBlock {
		t.Error("per-category overrides not applied")
	}
	for _, tc := range []struct {
		name string
		p    Policy
		want string
	}{
		{"bad secrets action", Policy{Secrets: "drop"}, `Policy.Secrets "drop"`},
		{"bad pii action", Policy{PII: "pass"}, `Policy.PII "pass"`},
		{"unknown category", Policy{Categories: map[Category]Action{"emali": ActionAllow}}, `unknown category "emali"`},
		{"bad category action", Policy{Categories: map[Category]Action{CategoryEmail: "hide"}}, `Policy.Categories[email] "hide"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	// A policy that skipped Validate fails closed.
	if (Policy{Categories: map[Category]Action{CategoryEmail: "bogus"}}).ActionFor(CategoryEmail) != ActionBlock {
		t.Error("invalid action did not fall back to block")
	}
	if CategoryEmail.Class() != ClassPII || CategoryJWT.Class() != ClassSecret || Category("typo").Class() != ClassSecret {
		t.Error("Class mapping wrong")
	}
}

// Blocking names categories and never a value, in the error and the report.
func TestApplyBlockNeverRevealsValues(t *testing.T) {
	s := newTest(t)
	gh := "ghp_" + fake(50, alnum, 36)
	pw := "Quartz$" + fake(51, alnum, 8)
	email := "priya@globex.test"
	data := []byte("GITHUB_TOKEN=" + gh + "\nDB_PASSWORD=" + pw + "\ncontact " + email)
	_, err := s.Apply(peerA, DefaultPolicy(), data)
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("Apply = %v, want *BlockedError", err)
	}
	if !reflect.DeepEqual(be.Categories, []Category{CategoryGitHubToken, CategoryPasswordAssignment}) {
		t.Errorf("Categories = %v", be.Categories)
	}
	for _, v := range []string{gh, pw, email, gh[4:12]} {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error %q reveals %q", err, v)
		}
	}
	r := s.DryRun(peerA, DefaultPolicy(), data)
	if r.Action != ActionBlock || r.Output != "" || len(r.Findings) != 3 {
		t.Fatalf("DryRun = %+v, want block with no output and three findings", r)
	}
	// The report of a pass carries counts only.
	c, err := s.Apply(peerA, Policy{Secrets: ActionRedact}, data)
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := json.Marshal(c.Report())
	for _, v := range []string{gh, pw, email} {
		if bytes.Contains(rep, []byte(v)) || bytes.Contains(c.Bytes(), []byte(v)) {
			t.Fatalf("report %s or output reveals %q", rep, v)
		}
	}
	want := Report{Strongest: ActionPseudonymize, Counts: map[Category]map[Action]int{
		CategoryGitHubToken: {ActionRedact: 1}, CategoryPasswordAssignment: {ActionRedact: 1}, CategoryEmail: {ActionPseudonymize: 1}}}
	if !reflect.DeepEqual(c.Report(), want) {
		t.Errorf("Report = %+v, want %+v", c.Report(), want)
	}
}

func TestApplyPassAndLimits(t *testing.T) {
	s, err := New(Config{PseudonymKey: testKey, MaxInputBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clean := []byte(`{"msg": "nothing to see here", "n": 3}`)
	c, err := s.Apply(peerA, DefaultPolicy(), clean)
	if err != nil || !bytes.Equal(c.Bytes(), clean) || c.Report().Strongest != ActionPass {
		t.Fatalf("clean input: %q %+v %v", c.Bytes(), c.Report(), err)
	}
	if r := s.DryRun("", DefaultPolicy(), clean); r.Action != ActionPass || r.Output != string(clean) || r.Findings == nil {
		t.Fatalf("DryRun clean = %+v, want pass, same output, empty (non-nil) findings", r)
	}
	if _, err := s.Apply(peerA, DefaultPolicy(), make([]byte, 1025)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized Apply = %v, want ErrTooLarge", err)
	}
	if r := s.DryRun(peerA, DefaultPolicy(), make([]byte, 1025)); r.Action != ActionBlock {
		t.Fatalf("oversized DryRun = %+v, want block", r)
	}
	if _, err := s.Apply("", DefaultPolicy(), clean); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("Apply without peer = %v, want ErrNoPeer", err)
	}
	if _, err := s.Apply(peerA, Policy{PII: "nope"}, clean); err == nil {
		t.Fatal("Apply accepted an invalid policy")
	}
	// Allowed findings pass unchanged.
	allow := Policy{Secrets: ActionAllow, PII: ActionAllow}
	in := []byte("mail bob@initech.io from 10.0.0.1")
	c, err = s.Apply(peerA, allow, in)
	if err != nil || !bytes.Equal(c.Bytes(), in) || c.Report().Strongest != ActionPass {
		t.Fatalf("allow: %q %+v %v", c.Bytes(), c.Report(), err)
	}
	// Bytes returns a copy.
	b := c.Bytes()
	b[0] = 'X'
	if c.Bytes()[0] == 'X' {
		t.Fatal("Clean.Bytes aliases its buffer")
	}
}

// JSON in, JSON out: keys, values, numbers, nested JSON strings and escapes.
func TestApplyKeepsJSONValid(t *testing.T) {
	s := newTest(t)
	pem := "-----BEGIN EC PRIVATE KEY-----\n" + fake(60, alnum+"+/", 64) + "\n" + fake(61, alnum+"+/", 40) + "\n-----END EC PRIVATE KEY-----"
	doc := map[string]any{
		"user":           map[string]any{"email": "amelie@initech.io", "ssn": 123456789, "phone": "+447073216601"},
		"bob@initech.io": "the key is an address",
		"args":           `{"password": "Lantern22_", "ip": "10.81.145.103"}`,
		"tls_key":        pem,
		"list":           []any{"fe80::be0a:917d:67ab:fcb9", 42, true, nil, "192.168.66.46"},
		"note":           "tab\there \"quoted\" 2001:db8::1 é",
	}
	in, _ := json.Marshal(doc)
	in2, _ := json.MarshalIndent(doc, "", "  ")
	for _, pol := range []Policy{scrub, {Secrets: ActionRedact, PII: ActionRedact}} {
		for _, data := range [][]byte{in, in2} {
			c, err := s.Apply(peerA, pol, data)
			if err != nil {
				t.Fatal(err)
			}
			out := c.Bytes()
			if !json.Valid(out) {
				t.Fatalf("output is not JSON:\n%s", out)
			}
			for _, v := range []string{"amelie@initech.io", "123456789", "+447073216601", "bob@initech.io", "Lantern22_", "10.81.145.103", "fe80::be0a", "192.168.66.46", "2001:db8::1", "BEGIN EC PRIVATE"} {
				if bytes.Contains(out, []byte(v)) {
					t.Errorf("policy %+v: %q survived:\n%s", pol, v, out)
				}
			}
			var back map[string]any
			if err := json.Unmarshal(out, &back); err != nil || back["list"].([]any)[1] != float64(42) {
				t.Errorf("structure changed: %s", out)
			}
		}
	}
}

// Pseudonyms are restored for the peer they were issued to, and only for it.
func TestPseudonymRoundTripAndPeers(t *testing.T) {
	s := newTest(t)
	text := []byte("Customer amelie@initech.io (+33 6 13 51 25 93) wrote from 10.0.0.7; cc amelie@initech.io")
	ca, err := s.Apply(peerA, scrub, text)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := s.Apply(peerB, scrub, text)
	if err != nil {
		t.Fatal(err)
	}
	outA, outB := ca.Bytes(), cb.Bytes()
	if bytes.Contains(outA, []byte("amelie@")) || bytes.Equal(outA, outB) {
		t.Fatalf("tokens not per peer or value leaked:\nA: %s\nB: %s", outA, outB)
	}
	if bytes.Count(outA, []byte("<email:")) != 2 || strings.Count(string(outA), tokenOf(t, outA, "email")) != 2 {
		t.Fatalf("same value, same peer should give the same token: %s", outA)
	}
	if got := s.Restore(peerA, outA); !bytes.Equal(got, text) {
		t.Fatalf("Restore(A) = %s, want %s", got, text)
	}
	if got := s.Restore(peerB, outA); !bytes.Equal(got, outA) {
		t.Fatalf("Restore(B) restored A's tokens: %s", got)
	}
	// A reply that quotes the token in a sentence, and Go-escaped (\u003c).
	tok := tokenOf(t, outA, "email")
	reply := []byte(`{"answer":"I emailed ` + strings.NewReplacer("<", `\u003c`, ">", `\u003e`).Replace(tok) + ` and ` + tok + `"}`)
	got := s.Restore(peerA, reply)
	if !json.Valid(got) || bytes.Count(got, []byte("amelie@initech.io")) != 2 {
		t.Fatalf("Restore of a JSON reply = %s", got)
	}
	// DryRun shows the same tokens but does not record them.
	s2 := newTest(t)
	r := s2.DryRun(peerA, scrub, text)
	if r.Output != string(outA) {
		t.Fatalf("DryRun output %s differs from Apply's %s", r.Output, outA)
	}
	if got := s2.Restore(peerA, []byte(r.Output)); !bytes.Equal(got, []byte(r.Output)) {
		t.Fatal("DryRun recorded pseudonyms")
	}
	// A token this node never issued stays as it is.
	forged := []byte("<email:0123456789ab>")
	if got := s.Restore(peerA, forged); !bytes.Equal(got, forged) {
		t.Fatalf("forged token restored to %s", got)
	}
}

func tokenOf(t *testing.T, b []byte, cat string) string {
	t.Helper()
	i := bytes.Index(b, []byte("<"+cat+":"))
	if i < 0 {
		t.Fatalf("no %s token in %s", cat, b)
	}
	j := bytes.IndexByte(b[i:], '>')
	return string(b[i : i+j+1])
}

// JSON values keep their type and escapes through a round trip.
func TestRestoreJSON(t *testing.T) {
	s := newTest(t)
	in := []byte(`{"ssn":123456789,"note":"email \"bob@initech.io\"\nthanks","pw":"a\\b\"c9Xq!"}`)
	pol := Policy{Secrets: ActionPseudonymize, PII: ActionPseudonymize}
	c, err := s.Apply(peerA, pol, in)
	if err != nil {
		t.Fatal(err)
	}
	out := c.Bytes()
	if !json.Valid(out) || bytes.Contains(out, []byte("123456789")) || bytes.Contains(out, []byte("bob@")) {
		t.Fatalf("Apply = %s", out)
	}
	back := s.Restore(peerA, out)
	var a, b any
	if json.Unmarshal(in, &a) != nil || json.Unmarshal(back, &b) != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("Restore = %s, want the value of %s", back, in)
	}
}

func TestVaultPersists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.jsonl")
	s, err := New(Config{PseudonymKey: testKey, VaultPath: path})
	if err != nil {
		t.Fatal(err)
	}
	text := []byte("write to hannah.schmidt@northwind.dev")
	c, err := s.Apply(peerA, scrub, text)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("vault mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	s2, err := New(Config{PseudonymKey: testKey, VaultPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.Restore(peerA, c.Bytes()); !bytes.Equal(got, text) {
		t.Fatalf("after reopen Restore = %s", got)
	}
	// A torn last line (crash mid-write) is ignored; a readable-by-others file is refused.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"peer":"x","tok`)
	f.Close()
	s3, err := New(Config{PseudonymKey: testKey, VaultPath: path})
	if err != nil {
		t.Fatalf("torn line: %v", err)
	}
	s3.Close()
	os.Chmod(path, 0o644)
	if s4, err := New(Config{PseudonymKey: testKey, VaultPath: path}); err == nil {
		s4.Close()
		t.Fatal("opened a vault that others can read")
	}
}

// Two values whose short tokens collide get distinct (long) tokens.
func TestVaultCollision(t *testing.T) {
	v, _ := openVault("", VaultLimits{}, nil)
	mac := newTokenMAC(testKey)
	t1, _ := v.issue(mac, peerA, CategoryEmail, vaultEntry{Value: []byte("a@x.io")}, true)
	// Plant a different value under a's token, as a collision would.
	v.put(peerA, mac.pseudonym(peerA, CategoryEmail, []byte("b@x.io"), false), vaultEntry{Value: []byte("a@x.io")}, time.Now())
	t2, _ := v.issue(mac, peerA, CategoryEmail, vaultEntry{Value: []byte("b@x.io")}, true)
	if t1 == t2 || len(t2) <= len(t1) {
		t.Fatalf("collision not resolved: %s %s", t1, t2)
	}
	if e, ok := v.lookup(peerA, t2); !ok || string(e.Value) != "b@x.io" {
		t.Fatal("long token does not restore")
	}
}

// One Sanitizer serves many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	s, err := New(Config{PseudonymKey: testKey, VaultPath: filepath.Join(t.TempDir(), "v")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	texts := [][]byte{
		[]byte(`{"password": "Orchid42!", "email": "amelie@initech.io", "note": "` + "-----BEGIN" + ` nothing"}`),
		[]byte("call +4915885054038, ip 10.0.0.7, key AKIA" + fake(70, upperNum, 16) + ", page_token: x"),
		[]byte("id,name,ssn\n1,Ann,123456789\n"),
	}
	pol := Policy{Secrets: ActionPseudonymize, PII: ActionPseudonymize}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			peer := peerA
			if g%2 == 1 {
				peer = peerB
			}
			for i := 0; i < 30; i++ {
				in := texts[(g+i)%len(texts)]
				c, err := s.Apply(peer, pol, in)
				if err != nil {
					errs <- err
					return
				}
				if got := s.Restore(peer, c.Bytes()); !bytes.Equal(got, in) {
					errs <- errors.New("round trip failed: " + string(got))
					return
				}
				s.Scan(in)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
