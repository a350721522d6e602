package dashboard_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	_ "modernc.org/sqlite"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/catalogue"
	"github.com/treaty-dev/treaty/internal/dashboard"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// hostileName is a nickname a hostile or careless peer book could carry; the
// page must show it as text.
const hostileName = `<img src=x onerror=alert(1)>`

// browser finds a Chromium-family binary. Without one the test skips, except
// in CI (CI set), where it fails: CI installs Debian's chromium.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium, chromium-browser or google-chrome in PATH (apt-get install chromium)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
	return ""
}

// withHostilePeer is the node's API (groups and all) with one more peer
// whose nickname is markup.
type withHostilePeer struct {
	*client.Client
	groups *atomic.Bool // once set, a group whose every text is markup too
}

// Groups adds, once groups is set, a group whose name, members and
// refusal reasons are markup (a member's nickname and refusal come from peers).
func (w withHostilePeer) Groups(ctx context.Context) ([]localapi.GroupInfo, error) {
	gs, err := w.Client.Groups(ctx)
	if !w.groups.Load() {
		return gs, err
	}
	return append(gs, localapi.GroupInfo{Name: hostileName, Mode: hostileName, Leader: hostileName, Error: hostileName,
		Members: []localapi.GroupMember{{ID: "did:key:z6MkHostile", Name: hostileName, Refused: hostileName}}}), nil
}

// MotionList gives the hostile group a motion whose every text is markup.
func (w withHostilePeer) MotionList(ctx context.Context, group string) ([]localapi.MotionInfo, error) {
	if group != hostileName {
		return w.Client.MotionList(ctx, group)
	}
	return []localapi.MotionInfo{{Name: hostileName, Kind: hostileName, Subject: hostileName, Proposer: hostileName,
		Text: hostileName, Outcome: "failed", Reason: hostileName, Yes: []string{hostileName}}}, nil
}

func (w withHostilePeer) Peers(ctx context.Context) ([]localapi.PeerInfo, error) {
	ps, err := w.Client.Peers(ctx)
	return append(ps, localapi.PeerInfo{Name: hostileName, ID: "did:key:z6MkHostile", Addr: "127.0.0.1:9", Unwitnessed: 11}), err
}

// Members adds the hostile peer as a gossip member whose organisation is
// markup too (an organisation is what a member's own signed record says).
func (w withHostilePeer) Members(ctx context.Context) ([]localapi.MemberInfo, error) {
	ms, err := w.Client.Members(ctx)
	return append(ms, localapi.MemberInfo{Name: hostileName, ID: "did:key:z6MkHostile", Status: "member", State: "suspect", Org: hostileName}), err
}

// TestBrowser drives the page in headless Chromium against two real nodes.
func TestBrowser(t *testing.T) {
	bin := browser(t)
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Members[0], c.Members[1]
	globex.Handle(t, "echo", backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) {
		return inv.Input, nil
	}))
	globex.Grant(t, "acme", "echo")

	var mu sync.Mutex
	score := 0.5
	trustFn := func(context.Context) (map[string]catalogue.Trust, error) {
		mu.Lock()
		defer mu.Unlock()
		score += 0.01
		return map[string]catalogue.Trust{globex.ID.String(): {Level: "known", Score: score}}, nil
	}
	var hostileGroups atomic.Bool
	d, err := dashboard.New(dashboard.Options{
		Node: withHostilePeer{acme.Client(), &hostileGroups}, Home: acme.Home, Trust: trustFn,
		SampleEvery: 100 * time.Millisecond, VerifyEvery: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := dashboard.LoadOrCreateToken(acme.Home)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	h, err := d.Handler(tok, addr, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	wg.Go(func() { srv.Serve(ln) })
	t.Cleanup(func() { cancel(); srv.Close(); wg.Wait() })

	// A first call, so the page has an audit entry to prove.
	acme.MustCall(t, "globex", "echo", `{"n":0}`)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// A dialog would mean peer text ran as script: note it, close it so the
	// page does not block, and fail at the end.
	var dialogs sync.Map
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	opened := chromedp.Events(bctx, page.JavascriptDialogOpening)
	var dwg sync.WaitGroup
	defer dwg.Wait()
	defer bcancel()
	dwg.Go(func() {
		for ev, err := range opened {
			if err != nil {
				return
			}
			dialogs.Store(ev.Message, true)
			chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	})

	// Without the token the page loads, reads nothing, and says what to open.
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, bctx, "page asks for the token", `document.getElementById("login").hidden === false &&
		document.getElementById("live").textContent === "offline"`, 10*time.Second)

	// The printed URL (token in the fragment) opens it, and the page goes live.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+addr+"/#token="+tok)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, bctx, "page goes live", `document.getElementById("live").textContent === "live" &&
		document.getElementById("login").hidden === true`, 10*time.Second)
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, tok) {
		t.Fatalf("token left in the address bar: %s", loc)
	}
	// A reload keeps the tab's token.
	if err := chromedp.Do(bctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, bctx, "live after reload", `document.getElementById("live").textContent === "live"`, 10*time.Second)

	// Another local server the browser visits (another port of the same
	// address) learns nothing: browsers send 127.0.0.1's cookies to every
	// port of it, and the dashboard sets none.
	var heard sync.Map
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := r.Header.Get("Cookie"); c != "" {
			heard.Store(c, true)
		}
		for _, v := range r.Header {
			for _, s := range v {
				if strings.Contains(s, tok) {
					heard.Store("header "+s, true)
				}
			}
		}
	}))
	defer other.Close()
	if err := chromedp.Do(bctx, chromedp.Navigate(other.URL+"/")); err != nil {
		t.Fatal(err)
	}
	heard.Range(func(k, _ any) bool {
		t.Errorf("another local server received %q from the browser", k)
		return true
	})
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, bctx, "live again", `document.getElementById("live").textContent === "live"`, 10*time.Second)

	// Both nodes of the run: acme in the header, globex among its peers.
	waitJS(t, bctx, "both nodes shown", `document.getElementById("node").textContent.startsWith("acme ") &&
		[...document.querySelectorAll("#peers tbody tr")].some(tr => tr.cells[0].textContent === "globex")`, 10*time.Second)

	// Witnessing beside peer health: globex's notes are judged; the hostile
	// peer's streak of unjudged ones is past the alert, in red.
	waitJS(t, bctx, "witness column", `[...document.querySelectorAll("#peers tbody tr")].some(tr => tr.cells[0].textContent === "globex" && tr.cells[4].textContent === "ok") &&
		[...document.querySelectorAll("#peers tbody tr")].some(tr => tr.cells[4].textContent === "11 unjudged in a row" && tr.cells[4].className === "refused")`, 5*time.Second)

	// A node that runs no group shows no group panel.
	waitJS(t, bctx, "no group panel", `document.getElementById("groups-box").hidden === true`, 5*time.Second)
	// A group whose texts (name, members, refusals, motions) are markup
	// shows them as text.
	hostileGroups.Store(true)
	waitJS(t, bctx, "hostile group as text", `document.getElementById("groups-box").hidden === false &&
		[...document.querySelectorAll("#groups tbody tr")].some(tr => tr.cells[0].textContent === `+jsString(hostileName)+` &&
			tr.cells[6].textContent === "error: "+`+jsString(hostileName)+` && tr.cells[7].textContent.startsWith(`+jsString(hostileName)+`)) &&
		[...document.querySelectorAll("#motions tbody tr")].some(tr => tr.cells[1].textContent === `+jsString(hostileName)+` &&
			tr.cells[2].textContent === `+jsString(hostileName)+` && tr.cells[5].textContent === "1")`, 5*time.Second)

	// Members: globex from the peer book, with its source and status.
	waitJS(t, bctx, "members panel", `document.getElementById("members-box").hidden === false &&
		[...document.querySelectorAll("#members tbody tr")].some(tr => tr.cells[0].textContent === "globex" && tr.cells[3].textContent === "member")`, 10*time.Second)

	// Peer-controlled markup renders as text, runs nothing, adds no element.
	waitJS(t, bctx, "hostile nickname as text", `[...document.querySelectorAll("#peers tbody tr")].some(tr => tr.cells[0].textContent === `+jsString(hostileName)+`)`, 5*time.Second)
	waitJS(t, bctx, "hostile member org as text", `[...document.querySelectorAll("#members tbody tr")].some(tr => tr.cells[0].textContent === `+jsString(hostileName)+` && tr.cells[5].textContent === `+jsString(hostileName)+`)`, 5*time.Second)
	imgs, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("img").length`))
	if err != nil {
		t.Fatal(err)
	}
	if imgs != 0 {
		t.Fatalf("%d img elements: peer text became markup", imgs)
	}

	// Trust over time: the sparkline has several points.
	waitJS(t, bctx, "trust sparkline", `[...document.querySelectorAll("#peers tbody tr")].some(tr => tr.cells[0].textContent === "globex" &&
		(tr.querySelector("svg polyline")?.getAttribute("points") || "").split(" ").length >= 3)`, 10*time.Second)

	// The audit log verifies, and an entry's inclusion proof checks.
	waitJS(t, bctx, "verified ok", `document.getElementById("verify").textContent === "ok"`, 10*time.Second)
	// The table is rendered anew on every snapshot: a click on a row that
	// was just replaced is lost, so the row is clicked until the proof shows.
	waitJS(t, bctx, "proof valid", `(() => {
		if (document.getElementById("proof").hidden) document.querySelector("#audit tbody tr")?.click();
		return document.getElementById("proof-valid").textContent === "valid" &&
			document.getElementById("proof-body").textContent.includes("signed checkpoint");
	})()`, 10*time.Second)

	// A new call shows within a second of its answer.
	acme.MustCall(t, "globex", "echo", `{"n":1}`)
	done := time.Now()
	last := acme.Audit(t, auditNewest())
	idx := last[0].Index
	waitJS(t, bctx, "new call", `[...document.querySelectorAll("#calls tbody tr")].some(tr => tr.dataset.index === "`+itoa(idx)+`")`, 5*time.Second)
	if el := time.Since(done); el > time.Second {
		t.Fatalf("the new call took %v to show, want under 1s", el)
	}

	// A row edited with plain SQLite turns the verification state red.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(acme.Home, "audit.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE entries SET leaf = replace(leaf, '"outcome":"ok"', '"outcome":"no"') WHERE idx = ?`, idx)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tamper touched %d rows", n)
	}
	waitJS(t, bctx, "verification failed", `document.getElementById("verify").textContent === "failed" &&
		getComputedStyle(document.getElementById("verify")).backgroundColor === "rgb(207, 34, 46)"`, 10*time.Second)

	if p := os.Getenv("DASHBOARD_SCREENSHOT"); p != "" {
		if png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile(p, png, 0o644)
		}
	}
	dialogs.Range(func(k, _ any) bool {
		t.Errorf("a dialog opened (%v): peer text ran as script", k)
		return true
	})
}

// waitJS polls expr in the page until it is true or within passes.
func waitJS(t *testing.T, ctx context.Context, what, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s: not after %v (last error %v); page:\n%s", what, within, err, text)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
