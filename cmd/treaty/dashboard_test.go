package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/dashboard"
)

// TestDashboardFlags: bad addresses and polls are usage errors (exit 2),
// and a non-loopback address needs --allow-non-loopback.
func TestDashboardFlags(t *testing.T) {
	dir, _, _ := tlHome(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"dashboard", "--home", dir, "--listen", "127.0.0.1:1", "--http", "127.0.0.1:2"}, "disagree"},
		{[]string{"dashboard", "--home", dir, "--listen", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"dashboard", "--home", dir, "--http", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"dashboard", "--home", dir, "--http", "example.com:7780"}, "not a loopback address"},
		{[]string{"dashboard", "--home", dir, "--http", "127.0.0.1:0", "--poll", "1ms"}, "--poll"},
		{[]string{"dashboard", "--home", dir, "--http", "127.0.0.1:0", "--verify-every", "10ms"}, "--verify-every"},
		{[]string{"dashboard", "--home", dir, "--http", "127.0.0.1:0", "extra"}, ""},
	} {
		_, errOut, code := runTL(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d %q; want 2 naming %q", tc.args, code, errOut, tc.msg)
		}
	}
}

// TestDashboardServes runs the command: it makes the token (0600), prints a
// URL that logs in, serves the snapshot to the token only, says the node is
// not answering when it is not, and exits 0 when stopped.
func TestDashboardServes(t *testing.T) {
	dir, _, _ := tlHome(t)
	errF, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer errF.Close()
	oldErr := os.Stderr
	os.Stderr = errF
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"dashboard", "--home", dir, "--listen", "127.0.0.1:0"}) }()
	defer func() {
		cancel()
		code := <-done
		os.Stderr = oldErr
		if code != 0 {
			t.Errorf("exit %d after stop", code)
		}
	}()

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for ; url == ""; <-tick.C {
		b, _ := os.ReadFile(errF.Name())
		if _, rest, ok := strings.Cut(string(b), "open "); ok {
			url, _, _ = strings.Cut(rest, " ")
		}
		if url == "" && time.Now().After(deadline) {
			t.Fatalf("no URL printed: %q", b)
		}
	}
	st, err := os.Stat(filepath.Join(dir, dashboard.TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, dashboard.TokenFile))
	// The token is in the fragment, which a browser sends to no server.
	if !strings.HasSuffix(url, "/#token="+strings.TrimSpace(string(tok))) {
		t.Fatalf("printed URL %q does not carry the token in its fragment", url)
	}
	base, _, _ := strings.Cut(url, "#")

	resp, err := http.Get(base + "api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without token: %d", resp.StatusCode)
	}
	// The first read of the node ends with its reason for not answering.
	for ; ; <-tick.C {
		req, _ := http.NewRequest(http.MethodGet, base+"api/snapshot", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var s dashboard.Snapshot
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("snapshot %d: %v", resp.StatusCode, err)
		}
		if s.Node.Up {
			t.Fatalf("node shown up with no node running: %+v", s.Node)
		}
		if s.Node.Error != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no read of the node after 10s: %+v", s)
		}
	}
}
