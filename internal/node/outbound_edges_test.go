package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// pairNodes starts caller and callee on loopback, each in the other's peer
// book; the callee registers "echo" (call) and "ticks" (stream), granted to the
// caller, and limits bodies to 1 KiB.
func pairNodes(t *testing.T) (caller, callee *Node) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(name string, maxBody int64) *Node {
		dir := t.TempDir()
		if _, err := home.Init(dir, name, "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Limits.MaxBodyBytes = maxBody
		if err := config.Save(dir, cfg); err != nil {
			t.Fatal(err)
		}
		n, err := Open(Options{Home: dir, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); n.Close() })
		return n
	}
	caller, callee = open("caller", 1024), open("callee", 1024)
	for _, pair := range [][2]*Node{{caller, callee}, {callee, caller}} {
		if err := home.AddPeer(pair[0].Home(), pair[1].Name(), pair[1].Addr().String(), pair[1].ID().String()); err != nil {
			t.Fatal(err)
		}
		if err := pair[0].Reload(); err != nil {
			t.Fatal(err)
		}
	}
	echo := backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	ticks := backend.StreamFunc(func(_ context.Context, _ backend.Invocation, emit func([]byte) error) error {
		return emit([]byte(`{"tick":1}`))
	})
	if err := callee.Register(Handler{Info: CapabilityInfo{Name: "echo"}, Backend: echo}); err != nil {
		t.Fatal(err)
	}
	if err := callee.Register(Handler{Info: CapabilityInfo{Name: "ticks"}, Streamer: ticks}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"echo", "ticks"} {
		if _, err := home.Grant(callee.Home(), "caller", c); err != nil {
			t.Fatal(err)
		}
	}
	if err := callee.Reload(); err != nil {
		t.Fatal(err)
	}
	return caller, callee
}

func TestOutboundEdges(t *testing.T) {
	caller, _ := pairNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := caller.Call(ctx, "callee", "echo", []byte(`{"ok":true}`)); err != nil {
		t.Fatalf("plain call: %v", err)
	}
	noop := func(json.RawMessage) error { return nil }
	for _, tc := range []struct {
		name string
		do   func() error
		msg  string
	}{
		{"input over max_body_bytes", func() error {
			_, err := caller.Call(ctx, "callee", "echo", []byte(`{"x":"`+strings.Repeat("a", 2000)+`"}`))
			return err
		}, "over limits.max_body_bytes (1024 bytes); nothing was sent"},
		{"stream input over max_body_bytes", func() error {
			return caller.Stream(ctx, "callee", "ticks", []byte(`{"x":"`+strings.Repeat("a", 2000)+`"}`), noop)
		}, "over limits.max_body_bytes"},
		{"stream of a call capability", func() error {
			return caller.Stream(ctx, "callee", "echo", []byte(`{}`), noop)
		}, "capability echo is not a stream capability; call it without --stream"},
		{"call of a stream capability", func() error {
			_, err := caller.Call(ctx, "callee", "ticks", []byte(`{}`))
			return err
		}, "capability ticks is a stream capability; call it with --stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			var r *refusal.Error
			if !errors.As(err, &r) || r.Stage != refusal.StageUsage || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v; want a usage refusal containing %q", err, tc.msg)
			}
		})
	}
}

func TestMessagesNamePeerByNickname(t *testing.T) {
	caller, _ := pairNodes(t)
	gone := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	if err := home.AddPeer(caller.Home(), "gone", "127.0.0.1:1", gone); err != nil {
		t.Fatal(err)
	}
	if err := caller.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := caller.Call(ctx, "gone", "echo", []byte(`{}`))
	if refusal.StageOf(err) != refusal.StageTransport || !strings.Contains(err.Error(), "gone (") {
		t.Fatalf("err = %v; want a transport refusal naming the peer \"gone (KEY)\"", err)
	}
}
