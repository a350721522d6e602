// Package demo tells treaty's story on loopback in one command: two
// organisations' nodes, real keys, real mutual TLS on real sockets, signed calls,
// default-deny policy, and the refusals that keep each side safe.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// org is one organisation's node in the demo.
type org struct {
	name string
	home string
	n    *node.Node
}

// Run plays the demo, narrating to w. It returns an error when any step does
// not behave as the story says, so the demo doubles as a smoke test.
func Run(ctx context.Context, w io.Writer) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "treaty-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	say := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	step := func(title string) { say("\n== %s", title) }

	say("treaty demo: two organisations federate their agents on loopback (homes in %s)", dir)

	step("1. Each organisation creates its identity: an ed25519 key, named by its did:key")
	orgs := map[string]*org{}
	for _, name := range []string{"acme", "globex", "mallory"} {
		o := &org{name: name, home: dir + "/" + name}
		id, err := home.Init(o.home, name, "127.0.0.1:0")
		if err != nil {
			return err
		}
		if o.n, err = node.Open(node.Options{Home: o.home, Logger: quiet}); err != nil {
			return err
		}
		if err := o.n.Start(ctx); err != nil {
			return err
		}
		defer o.n.Close()
		orgs[name] = o
		say("   %-8s %s  listening on %s", name, id, o.n.Addr())
	}
	acme, globex, mallory := orgs["acme"], orgs["globex"], orgs["mallory"]

	step("2. They exchange IDs and addresses out of band and add each other to their peer books")
	must := func(err error) {
		if err != nil {
			panic(err) // caught below: setup errors are bugs in the demo
		}
	}
	if err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("demo setup: %v", r)
			}
		}()
		must(home.AddPeer(acme.home, "globex", globex.n.Addr().String(), globex.n.ID().String()))
		must(home.AddPeer(globex.home, "acme", acme.n.Addr().String(), acme.n.ID().String()))
		// mallory knows globex, but globex has never heard of mallory.
		must(home.AddPeer(mallory.home, "globex", globex.n.Addr().String(), globex.n.ID().String()))
		for _, o := range orgs {
			must(o.n.Reload())
		}
		return nil
	}(); err != nil {
		return err
	}
	say("   acme   knows globex; globex knows acme; mallory knows globex (globex does not know mallory)")

	step("3. globex exposes a code-review capability, and a deploy capability, and grants only code-review to acme")
	review := backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) {
		var in struct {
			Diff string `json:"diff"`
		}
		if err := json.Unmarshal(inv.Input, &in); err != nil {
			return nil, &backend.Failure{Reason: "input must be {\"diff\": ...}", Err: err}
		}
		comments := []string{}
		if strings.Contains(in.Diff, "TODO") {
			comments = append(comments, "resolve the TODO before merging")
		}
		if strings.Contains(in.Diff, "panic(") {
			comments = append(comments, "return an error instead of panicking")
		}
		return json.Marshal(map[string]any{"reviewer": "globex-review-bot", "approved": len(comments) == 0, "comments": comments})
	})
	deploy := backend.Func(func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{"deployed":true}`), nil })
	if err := globex.n.Register(node.Handler{Info: node.CapabilityInfo{Name: "code-review", Description: "reviews a diff"}, Backend: review}); err != nil {
		return err
	}
	if err := globex.n.Register(node.Handler{Info: node.CapabilityInfo{Name: "deploy", Description: "deploys to production"}, Backend: deploy}); err != nil {
		return err
	}
	if _, err := home.Grant(globex.home, "acme", "code-review"); err != nil {
		return err
	}
	if err := globex.n.Reload(); err != nil {
		return err
	}
	say("   policy.cedar on globex now permits acme to list and call code-review; everything else is denied")

	step("4. acme asks globex what it may use")
	t0 := time.Now()
	caps, err := acme.n.Caps(ctx, "globex")
	if err != nil {
		return fmt.Errorf("caps: %w", err)
	}
	var names []string
	for _, c := range caps {
		names = append(names, c.Name)
	}
	say("   globex shows acme: %v  (%s; deploy stays invisible)", names, ms(time.Since(t0)))
	if len(names) != 1 || names[0] != "code-review" {
		return fmt.Errorf("demo: acme sees %v, want [code-review]", names)
	}

	step("5. acme's agent calls globex's code-review: signed, mutually authenticated, authorized")
	diff := `{"diff":"+ // TODO: handle errors\n+ panic(err)"}`
	t0 = time.Now()
	res, err := acme.n.Call(ctx, "globex", "code-review", []byte(diff))
	if err != nil {
		return fmt.Errorf("demo: the granted call failed: %w", err)
	}
	say("   result  %s", res.Output)
	say("   first call %s (handshake included)", ms(time.Since(t0)))
	t0 = time.Now()
	const warm = 200
	for range warm {
		if _, err := acme.n.Call(ctx, "globex", "code-review", []byte(diff)); err != nil {
			return err
		}
	}
	say("   %d more calls over the pooled connection: %s per call", warm, ms(time.Since(t0)/warm))
	if err := res.Receipt.Verify(); err != nil {
		return fmt.Errorf("demo: receipt does not verify: %w", err)
	}
	say("   acme keeps globex's signed receipt (verified offline): status %d, response %s", res.Receipt.Status, res.Receipt.ContentDigest)

	step("6. acme tries deploy, which globex never granted")
	_, err = acme.n.Call(ctx, "globex", "deploy", []byte(`{}`))
	if err := expect(err, refusal.StagePolicy, true); err != nil {
		return err
	}
	say("   refused: %v  (exit code %d)", err, refusal.ExitCode(err))

	step("7. mallory, whose key globex does not know, tries code-review")
	_, err = mallory.n.Call(ctx, "globex", "code-review", []byte(diff))
	if err := expect(err, refusal.StageTransport, false); err != nil {
		return err
	}
	say("   refused at the TLS handshake: %v  (exit code %d)", err, refusal.ExitCode(err))

	step("8. globex removes acme from its peer book; acme's open connection is closed at once")
	if err := home.RemovePeer(globex.home, "acme"); err != nil {
		return err
	}
	if err := globex.n.Reload(); err != nil {
		return err
	}
	_, err = acme.n.Call(ctx, "globex", "code-review", []byte(diff))
	if err := expect(err, refusal.StageTransport, false); err != nil {
		return err
	}
	say("   refused: %v", err)

	say("\ndemo complete in %s: every step behaved as the design says.", ms(time.Since(start)))
	return nil
}

// expect checks that err is a refusal at stage (from the peer when remote).
func expect(err error, stage refusal.Stage, remote bool) error {
	var r *refusal.Error
	if !errors.As(err, &r) || r.Stage != stage || r.Remote != remote {
		return fmt.Errorf("demo: expected a %s refusal (remote=%v), got %v", stage, remote, err)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
