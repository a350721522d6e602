package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// spreadWait bounds how long the demo waits for a statement to reach every
// member (docs/admission.md documents 3 s).
const spreadWait = 3 * time.Second

// admission adds a fourth organisation by invite, shows every member learning
// it without a peer book edit, then revokes its key with a revocation it had
// prepared. members are the organisations already federated through inviter.
func admission(ctx context.Context, say func(string, ...any), step func(string), dir string, inviter *org, members ...*org) error {
	step("Admission: umbrella joins by an invite from " + inviter.name + "; nobody edits a peer book")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	u := &org{name: "umbrella", home: filepath.Join(dir, "umbrella")}
	if _, err := home.Init(u.home, u.name, "127.0.0.1:0"); err != nil {
		return err
	}
	var err error
	if u.n, err = node.Open(node.Options{Home: u.home, Logger: quiet}); err != nil {
		return err
	}
	if err := u.n.Start(ctx); err != nil {
		return err
	}
	defer u.n.Close()
	tok, inv, err := inviter.n.Invite(ctx, 10*time.Minute, 1, "")
	if err != nil {
		return err
	}
	say("   %s: treaty invite --ttl 10m --uses 1  -> %.20s... (signed, single use, until %s)", inviter.name, tok, inv.Expires.Format(time.TimeOnly))
	t0 := time.Now()
	res, err := u.n.Join(ctx, tok, "")
	if err != nil {
		return fmt.Errorf("demo: join: %w", err)
	}
	say("   umbrella: treaty join TOKEN  -> joined through %s, learned %d other member(s)", res.Name, res.Members)
	all := append([]*org{inviter}, members...)
	if err := waitAll(ctx, all, func(o *org) bool { _, err := o.n.Resolve(u.n.ID().String()); return err == nil }); err != nil {
		return fmt.Errorf("demo: not every member learned umbrella: %w", err)
	}
	for _, o := range all {
		p, _ := o.n.Resolve(u.n.ID().String())
		say("   %-8s knows umbrella at %s (source %s)", o.name, p.Addr, o.n.PeerSource(u.n.ID()))
	}
	say("   every member learned umbrella in %s; it may call nothing until someone grants it", ms(time.Since(t0)))
	if _, err := u.n.Call(ctx, inviter.name, "code-review", []byte(`{"diff":""}`)); refusal.StageOf(err) != refusal.StagePolicy {
		return fmt.Errorf("demo: umbrella's ungranted call: %v, want a policy refusal", err)
	}

	step("Admission: umbrella's laptop is stolen; its prepared revocation is published from " + members[len(members)-1].name)
	key, err := identity.LoadKeyFile(filepath.Join(u.home, node.KeyFile))
	if err != nil {
		return err
	}
	_, revocation, err := membership.SignRevocation(key, time.Now(), "laptop stolen") // `treaty revoke --prepare FILE`, done on day one
	if err != nil {
		return err
	}
	t0 = time.Now()
	publisher := members[len(members)-1]
	if _, err := publisher.n.Publish(ctx, revocation); err != nil {
		return err
	}
	if err := waitAll(ctx, all, func(o *org) bool { return !o.n.Admitted(u.n.ID()) }); err != nil {
		return fmt.Errorf("demo: the revocation did not reach every member: %w", err)
	}
	say("   every member refuses umbrella's key after %s; its connections are closed", ms(time.Since(t0)))
	_, err = u.n.Call(ctx, inviter.name, "code-review", []byte(`{"diff":""}`))
	if refusal.StageOf(err) != refusal.StageTransport {
		return fmt.Errorf("demo: umbrella after its revocation: %v, want a refused handshake", err)
	}
	say("   umbrella calling %s: %v  (exit code %d)", inviter.name, err, refusal.ExitCode(err))
	return nil
}

// waitAll polls cond on every org until it holds or spreadWait passes.
func waitAll(ctx context.Context, orgs []*org, cond func(*org) bool) error {
	deadline := time.Now().Add(spreadWait)
	for {
		ok := true
		for _, o := range orgs {
			if !cond(o) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", spreadWait)
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
