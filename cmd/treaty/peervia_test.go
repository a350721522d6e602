package main

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
)

// TestPeerAddVia: --via writes peers[].via (and needs no --addr); a relay
// that is not a directly reached peer is a usage error naming via; adding the
// peer again without --via dials it directly again.
func TestPeerAddVia(t *testing.T) {
	dir, bob, _ := tlHome(t)
	laptop := tlDID(t, 7)
	viaOf := func() config.Peer {
		t.Helper()
		cfg, err := config.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := cfg.Peer(laptop)
		if !ok {
			t.Fatal("laptop is not in the peer book")
		}
		return p
	}
	mustRun(t, "peer", "add", "--home", dir, "--name", "laptop", "--via", "bob", laptop)
	if p := viaOf(); p.Via != "bob" || p.Addr != "" {
		t.Fatalf("entry %+v, want via bob and no addr", p)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"neither addr nor via", []string{"peer", "add", "--home", dir, "--name", "dave", tlDID(t, 8)}, "--via"},
		{"unknown relay", []string{"peer", "add", "--home", dir, "--name", "dave", "--via", "nobody", tlDID(t, 8)}, "via"},
		{"relay reached through a relay", []string{"peer", "add", "--home", dir, "--name", "dave", "--via", "laptop", tlDID(t, 8)}, "via"},
		{"itself", []string{"peer", "add", "--home", dir, "--name", "bob", "--addr", "127.0.0.1:7421", "--via", "bob", bob}, "via"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, e, code := runTL(t, tc.args...)
			if code != 2 || !strings.Contains(e, tc.want) {
				t.Fatalf("%v: exit %d (%s), want 2 naming %q", tc.args, code, e, tc.want)
			}
		})
	}
	mustRun(t, "peer", "add", "--home", dir, "--name", "laptop", "--addr", "127.0.0.1:7423", laptop)
	if p := viaOf(); p.Via != "" || p.Addr != "127.0.0.1:7423" {
		t.Fatalf("entry %+v, want a direct addr and no via", p)
	}
}
