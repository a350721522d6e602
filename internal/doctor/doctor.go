// Package doctor checks a node's home and, when it runs, the node and its
// peers, and says in plain sentences what is wrong and how to fix it. It
// changes nothing in the home. Probing a peer costs that peer one refused
// request (a GET it answers with a signed refusal), which its audit log
// records like any other.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Status is a finding's verdict.
type Status string

// Verdicts; only Fail makes the home unhealthy.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
)

// Finding is one check's result: a sentence saying what was found and, when
// it is not OK, one saying how to fix it.
type Finding struct {
	Check  string // modes, key, config, node, port, peer NAME, clock NAME, audit, disk
	Status Status
	Text   string
	Fix    string
}

// Options configures Run. Home is required.
type Options struct {
	Home    string
	Now     func() time.Time // this machine's clock, compared with peers'; nil: time.Now
	Timeout time.Duration    // per probe (local API, each peer); zero: 5s
	MaxSkew time.Duration    // clock difference with a peer that fails; zero: 30s (the wire's skew allowance)
	// Statfs reports the free and total bytes of the filesystem holding a
	// directory; nil: statfs(2).
	Statfs func(dir string) (free, total uint64, err error)
}

// Healthy reports whether no finding failed.
func Healthy(fs []Finding) bool {
	for _, f := range fs {
		if f.Status == Fail {
			return false
		}
	}
	return true
}

// Write prints the findings, one per line, with the fix under a failure.
func Write(w io.Writer, fs []Finding) {
	for _, f := range fs {
		fmt.Fprintf(w, "%-4s  %-14s %s\n", f.Status, f.Check, f.Text)
		if f.Fix != "" && f.Status != OK {
			fmt.Fprintf(w, "      %-14s fix: %s\n", "", f.Fix)
		}
	}
}

// Run runs every check it can; a check whose prerequisite failed (a peer
// probe without a valid key and configuration) is left out.
func Run(ctx context.Context, o Options) ([]Finding, error) {
	if o.Home == "" {
		return nil, errors.New("doctor: Options.Home is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = 30 * time.Second
	}
	if o.Statfs == nil {
		o.Statfs = statfs
	}
	if o.Timeout < 0 || o.MaxSkew < 0 {
		return nil, errors.New("doctor: Options.Timeout and Options.MaxSkew must not be negative")
	}
	d := &run{o: o}
	if !d.modes() {
		return d.out, nil // no home: nothing else to check
	}
	key := d.key()
	cfg := d.config()
	d.node(ctx, key, cfg)
	if key != nil && cfg != nil {
		d.peers(ctx, *key, cfg)
	}
	if key != nil {
		d.audit(ctx, key.Public())
	}
	d.disk(cfg)
	return d.out, nil
}

type run struct {
	o   Options
	out []Finding
}

func (d *run) add(check string, s Status, fix, format string, a ...any) {
	d.out = append(d.out, Finding{Check: check, Status: s, Text: fmt.Sprintf(format, a...), Fix: fix})
}

func (d *run) path(name string) string { return filepath.Join(d.o.Home, name) }

// modes: the home must not be writable by others, and the secrets in it
// readable only by the node's user.
func (d *run) modes() (exists bool) {
	fi, err := os.Stat(d.o.Home)
	if err != nil {
		d.add("modes", Fail, "create it with: treaty init --home "+d.o.Home, "The home %s cannot be read: %v.", d.o.Home, err)
		return false
	}
	bad := 0
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		bad++
		d.add("modes", Fail, "chmod 700 "+d.o.Home, "The home %s is writable by group or others (mode %04o): they could replace its configuration or audit log, and the node refuses to start.", d.o.Home, m)
	}
	secret := []string{homedir.KeyFile, homedir.VaultFile, homedir.AuditFile, homedir.TrustFile}
	for _, name := range secret {
		fi, err := os.Stat(d.path(name))
		if err != nil {
			continue // absent files are reported by the checks that need them
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			bad++
			d.add("modes", Fail, "chmod 600 "+d.path(name), "%s is readable or writable by group or others (mode %04o); only the node's user may use it.", name, m)
		}
	}
	for _, name := range []string{homedir.ConfigFile, homedir.PolicyFile} {
		fi, err := os.Stat(d.path(name))
		if err == nil && fi.Mode().Perm()&0o022 != 0 {
			bad++
			d.add("modes", Fail, "chmod 600 "+d.path(name), "%s is writable by group or others (mode %04o): they could grant themselves capabilities.", name, fi.Mode().Perm())
		}
	}
	if bad == 0 {
		d.add("modes", OK, "", "The home and its secrets are private to this user.")
	}
	return true
}

func (d *run) key() *identity.PrivateKey {
	k, err := identity.LoadKeyFile(d.path(homedir.KeyFile))
	if err != nil {
		fix := "restore identity.key from a backup; a new key (treaty init) is a new identity every peer must add again"
		if fi, serr := os.Stat(d.path(homedir.KeyFile)); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			fix = "chmod 600 " + d.path(homedir.KeyFile) + "; if others may have read it, treat the key as leaked"
		}
		d.add("key", Fail, fix, "The identity key cannot be used: %v.", err)
		return nil
	}
	d.add("key", OK, "", "The identity key loads: this node is %s. Its TLS certificate is made from it in memory at start.", k.Public().Short())
	return &k
}

func (d *run) config() *config.Config {
	cfg, err := config.Load(d.o.Home)
	if err != nil {
		d.add("config", Fail, "fix treaty.yaml (docs/configuration.md lists every key); a running node keeps its last valid configuration until then",
			"treaty.yaml is not valid: %v.", err)
		return nil
	}
	if _, err := policy.Load(d.o.Home); err != nil {
		d.add("config", Fail, "fix policy.cedar, or re-grant with treaty grant; a running node keeps its last valid policy until then",
			"policy.cedar is not valid: %v.", err)
		return cfg
	}
	d.add("config", OK, "", "treaty.yaml and policy.cedar are valid (%d peers, %d capabilities).", len(cfg.Peers), len(cfg.Capabilities))
	return cfg
}

// node asks the running node for its status over the local socket; when
// none answers, it checks the federation port is free for one to start.
func (d *run) node(ctx context.Context, key *identity.PrivateKey, cfg *config.Config) {
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	st, err := client.New(d.o.Home).Status(ctx)
	if err != nil {
		d.add("node", Fail, "start it: treaty run --home "+d.o.Home+" (or systemctl start treaty)", "No node answers on %s: %v.", d.path("treaty.sock"), err)
		if cfg != nil {
			ln, lerr := net.Listen("tcp", cfg.Listen)
			if lerr != nil {
				d.add("port", Fail, "stop the program holding it (ss -ltnp | grep "+portOf(cfg.Listen)+"), or change listen in treaty.yaml",
					"The federation port %s cannot be bound: %v.", cfg.Listen, lerr)
				return
			}
			ln.Close()
			d.add("port", OK, "", "The federation port %s is free for the node.", cfg.Listen)
		}
		return
	}
	switch {
	case key != nil && st.ID != key.Public().String():
		d.add("node", Fail, "stop the other node; each home needs its own socket", "The node answering on %s is %s, not this home's key %s.", d.path("treaty.sock"), st.ID, key.Public().Short())
	case st.ConfigError != "":
		d.add("node", Fail, "fix the file; the node applies it within a second", "The node %s runs, but on its previous configuration: %s.", st.Name, st.ConfigError)
	default:
		d.add("node", OK, "", "The node %s is running and serves at %s.", st.Name, st.Addr)
	}
	// Not dialled: a bare connection would be logged by the node as a
	// refused handshake. The peer probes below prove the port from outside.
	d.add("port", OK, "", "The node holds its federation port %s.", st.Addr)
}

// createdRE finds the created parameter of a response's Signature-Input.
var createdRE = regexp.MustCompile(`;created=(\d{1,19})`)

// peers dials each peer with this home's key, so the handshake is the one
// the node would make, and reads the peer's clock from its signed answer.
func (d *run) peers(ctx context.Context, key identity.PrivateKey, cfg *config.Config) {
	if len(cfg.Peers) == 0 {
		d.add("peers", OK, "", "The peer book is empty: add one with treaty peer add.")
		return
	}
	book := map[identity.PublicKey]config.Peer{}
	for _, p := range cfg.Peers {
		if k, err := identity.ParseDID(p.ID); err == nil {
			book[k] = p
		}
	}
	tr, err := transport.New(transport.Config{Identity: key, Peers: admitNone{}, Listen: "127.0.0.1:0", Now: d.o.Now,
		HandshakeTimeout: d.o.Timeout, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		d.add("peers", Fail, "", "Cannot set up TLS with this home's key: %v.", err)
		return
	}
	defer tr.Close()
	hc := &http.Client{Timeout: d.o.Timeout, Transport: tr.RoundTripper(func(_ context.Context, k identity.PublicKey) (string, error) {
		return book[k].Addr, nil
	})}
	for _, p := range cfg.Peers {
		if k, err := identity.ParseDID(p.ID); err == nil {
			d.peer(ctx, hc, k, p, key.Public().String(), cfg.Name)
		}
	}
}

func (d *run) peer(ctx context.Context, hc *http.Client, k identity.PublicKey, p config.Peer, selfID, selfName string) {
	check := "peer " + p.Name
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, transport.PeerURL(k, "/v1/caps"), nil)
	if err != nil {
		d.add(check, Fail, "", "Cannot build a probe for %s: %v.", p.Name, err)
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		var he *transport.HandshakeError
		if errors.As(err, &he) {
			d.add(check, Fail, "on "+p.Name+"'s node, add this node: treaty peer add --name "+selfName+" --addr THIS_NODE_HOST:PORT "+selfID+"; and check its key in treaty.yaml is "+p.ID,
				"%s (%s) answers, but the TLS handshake failed: %v.", p.Name, p.Addr, he)
			return
		}
		d.add(check, Fail, "check that "+p.Name+"'s node runs and that "+p.Addr+" is its address and open in the firewall",
			"%s at %s cannot be reached: %v.", p.Name, p.Addr, err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	d.add(check, OK, "", "%s at %s is reachable and the mutual TLS handshake with its pinned key succeeds.", p.Name, p.Addr)
	m := createdRE.FindStringSubmatch(resp.Header.Get("Signature-Input"))
	var sec int64
	if m != nil {
		sec, err = strconv.ParseInt(m[1], 10, 64)
	}
	if m == nil || err != nil {
		d.add("clock "+p.Name, Warn, "", "%s's answer carried no readable signature time; its clock was not compared.", p.Name)
		return
	}
	skew := time.Unix(sec, 0).Sub(d.o.Now())
	if skew.Abs() > d.o.MaxSkew {
		d.add("clock "+p.Name, Fail, "synchronise both clocks with NTP (timedatectl set-ntp true); calls are refused as expired or not yet valid beyond "+d.o.MaxSkew.String(),
			"%s's clock differs from this machine's by %v.", p.Name, skew.Round(time.Second))
		return
	}
	d.add("clock "+p.Name, OK, "", "%s's clock is within %v of this machine's (%v).", p.Name, d.o.MaxSkew, skew.Round(time.Second))
}

// admitNone: the doctor dials; it accepts no one.
type admitNone struct{}

func (admitNone) Admitted(identity.PublicKey) bool { return false }

func (d *run) audit(ctx context.Context, pub identity.PublicKey) {
	p := d.path(homedir.AuditFile)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		d.add("audit", Warn, "start the node once: it creates the log", "There is no audit log yet.")
		return
	}
	res, err := audit.Verify(ctx, p, pub)
	if err != nil {
		d.add("audit", Fail, "keep a copy of audit.db for investigation and do not delete it; treaty audit verify names the first bad entry; restore from a backup or an export checked with treaty audit verify",
			"The audit log does not verify: %v.", err)
		return
	}
	d.add("audit", OK, "", "The audit log verifies: %d entries, %d signed checkpoints.", res.Entries, res.Checkpoints)
}

// disk compares the free space with the audit log's min_free_bytes mark,
// below which the node refuses new calls.
func (d *run) disk(cfg *config.Config) {
	free, total, err := d.o.Statfs(d.o.Home)
	if err != nil {
		d.add("disk", Warn, "", "The free space of %s cannot be read: %v.", d.o.Home, err)
		return
	}
	mark := min(uint64(1<<30), total/20)
	if cfg != nil && cfg.Audit.MinFreeBytes > 0 {
		mark = uint64(cfg.Audit.MinFreeBytes)
	}
	if cfg != nil && cfg.Audit.MinFreeBytes < 0 {
		mark = 0
	}
	fix := "free space on this filesystem, or prune the audit log (audit.retention in treaty.yaml)"
	switch {
	case free < mark:
		d.add("disk", Fail, fix, "Only %s free on the home's filesystem, under the audit log's mark of %s: the node refuses new calls.", bytes(free), bytes(mark))
	case free < 2*mark:
		d.add("disk", Warn, fix, "%s free on the home's filesystem, near the audit log's mark of %s.", bytes(free), bytes(mark))
	default:
		d.add("disk", OK, "", "%s free on the home's filesystem (the audit log stops at %s).", bytes(free), bytes(mark))
	}
}

func bytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return ":" + p
}
