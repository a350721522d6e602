package a2abridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"

	"github.com/treaty-dev/treaty/internal/a2abridge"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// The treaty binary, built once on first use without -race: it is the
// process under test, not the test's.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func treatyBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "treaty-a2a-test-"); binErr != nil {
			return
		}
		out := filepath.Join(binDir, "treaty")
		if b, err := exec.Command("go", "build", "-o", out, "github.com/treaty-dev/treaty/cmd/treaty").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building treaty: %v\n%s", err, b)
			return
		}
		binPath = out
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// bearer adds the token to every request.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// TestA2AProcess is the front-side test: `treaty a2a` runs as a
// separate process on acme's home; acme and globex are real nodes federated
// over loopback mTLS. The a2a-go client fetches the Agent Card (refused
// without the token), sees globex's granted capabilities as skills, sends a
// message and gets the output with its provenance, streams a stream
// capability, and gets a failed task naming the stage for a capability
// globex has not granted.
func TestA2AProcess(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	globex.Handle(t, "secret", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	if err := globex.Node().Register(node.Handler{Info: node.CapabilityInfo{Name: "ticks", Description: "three events"},
		Streamer: backend.StreamFunc(func(_ context.Context, _ backend.Invocation, emit func([]byte) error) error {
			for i := 1; i <= 3; i++ {
				if err := emit(fmt.Appendf(nil, `{"tick":%d}`, i)); err != nil {
					return err
				}
			}
			return nil
		})}); err != nil {
		t.Fatal(err)
	}
	globex.Grant(t, "acme", "echo")
	globex.Grant(t, "acme", "ticks")

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	bin := treatyBin(t)

	refused := exec.CommandContext(ctx, bin, "a2a", "--home", acme.Home, "--http", "0.0.0.0:0")
	if out, _ := refused.CombinedOutput(); refused.ProcessState == nil || refused.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "loopback") {
		t.Fatalf("--http 0.0.0.0:0: %q, want exit 2 naming loopback", out)
	}

	cmd := exec.CommandContext(ctx, bin, "a2a", "--home", acme.Home, "--http", "127.0.0.1:0", "--poll", "200ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	urls := make(chan string, 1)
	var logMu sync.Mutex
	var logged strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logged.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if _, rest, ok := strings.Cut(sc.Text(), "serving "); ok {
				u, _, _ := strings.Cut(rest, " ")
				urls <- u
			}
		}
	}()
	defer func() {
		if t.Failed() {
			logMu.Lock()
			t.Logf("treaty a2a stderr:\n%s", logged.String())
			logMu.Unlock()
		}
	}()
	var base string
	select {
	case base = <-urls:
	case <-ctx.Done():
		t.Fatal("treaty a2a never said where it serves")
	}
	tokPath := filepath.Join(acme.Home, a2abridge.TokenFile)
	st, err := os.Stat(tokPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	tok, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}

	// Without the token: no card.
	if _, err := agentcard.NewResolver(http.DefaultClient).Resolve(ctx, base); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("card without the token: %v, want 401", err)
	}

	hc := &http.Client{Transport: bearer(strings.TrimSpace(string(tok)))}
	var card *a2a.AgentCard
	testnet.Eventually(t, 30*time.Second, func() error {
		card, err = agentcard.NewResolver(hc).Resolve(ctx, base)
		if err != nil {
			return err
		}
		var ids []string
		for _, s := range card.Skills {
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, []string{"globex__echo", "globex__ticks"}) {
			return fmt.Errorf("skills %v", ids)
		}
		return nil
	})
	if card.URL != base || card.PreferredTransport != a2a.TransportProtocolJSONRPC || !strings.Contains(card.Skills[0].Description, globex.ID.String()) {
		t.Fatalf("card = %+v", card)
	}

	cl, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(hc))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Destroy()

	// A call through both nodes: a completed task, the output as an
	// artifact, the provenance in metadata.
	msg := a2a.NewMessage(a2a.MessageRoleUser, a2a.DataPart{Data: map[string]any{"q": "hello globex"}})
	msg.Metadata = map[string]any{"skill": "globex__echo"}
	task := sendTask(ctx, t, cl, msg)
	if task.Status.State != a2a.TaskStateCompleted || len(task.Artifacts) != 1 {
		t.Fatalf("task = %s", mustJSON(t, task))
	}
	if d := dataPart(t, task.Artifacts[0].Parts); d["q"] != "hello globex" {
		t.Fatalf("output = %v", d)
	}
	var prov struct {
		PeerID  string          `json:"peer_id"`
		Peer    string          `json:"peer"`
		Receipt json.RawMessage `json:"receipt"`
		Digest  string          `json:"audit_request_digest"`
		Trust   *struct {
			Level string `json:"level"`
		} `json:"trust"`
		Audit *struct {
			Index     uint64          `json:"index"`
			SentIndex uint64          `json:"sent_index"`
			Report    json.RawMessage `json:"report"`
		} `json:"audit"`
	}
	if err := json.Unmarshal([]byte(mustJSON(t, task.Metadata[a2abridge.MetaProvenance])), &prov); err != nil {
		t.Fatal(err)
	}
	if prov.PeerID != globex.ID.String() || prov.Peer != "globex" || !strings.Contains(string(prov.Receipt), `"callee"`) ||
		len(prov.Digest) != 64 || prov.Trust == nil || prov.Trust.Level == "" ||
		prov.Audit == nil || prov.Audit.Index <= prov.Audit.SentIndex || !strings.Contains(string(prov.Audit.Report), `"sanitizer"`) {
		t.Fatalf("provenance = %s", mustJSON(t, task.Metadata))
	}
	if task.Status.Message == nil || task.Status.Message.Metadata[a2abridge.MetaProvenance] == nil {
		t.Fatalf("the status message carries no provenance: %s", mustJSON(t, task.Status))
	}

	// A stream: the events arrive as artifact updates, and a final status.
	msg = a2a.NewMessage(a2a.MessageRoleUser)
	msg.Metadata = map[string]any{"skill": "globex__ticks"}
	var ticks []float64
	var final a2a.TaskState
	for ev, err := range cl.SendStreamingMessage(ctx, &a2a.MessageSendParams{Message: msg}) {
		if err != nil {
			t.Fatal(err)
		}
		switch ev := ev.(type) {
		case *a2a.TaskArtifactUpdateEvent:
			ticks = append(ticks, dataPart(t, ev.Artifact.Parts)["tick"].(float64))
		case *a2a.TaskStatusUpdateEvent:
			final = ev.Status.State
		}
	}
	if !slices.Equal(ticks, []float64{1, 2, 3}) || final != a2a.TaskStateCompleted {
		t.Fatalf("stream: ticks %v, final %s", ticks, final)
	}

	// A capability globex has not granted: a failed task naming the stage.
	msg = a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: `{"k":1}`})
	msg.Metadata = map[string]any{"treaty/peer": "globex", "treaty/capability": "secret"}
	task = sendTask(ctx, t, cl, msg)
	if task.Status.State != a2a.TaskStateFailed || task.Status.Message == nil ||
		!strings.Contains(textOf(task.Status.Message.Parts), "refused by the peer at stage policy") {
		t.Fatalf("denied task = %s", mustJSON(t, task))
	}
	if e, _ := task.Metadata[a2abridge.MetaError].(map[string]any); e["stage"] != "policy" || e["remote"] != true {
		t.Fatalf("denied task metadata = %v", task.Metadata)
	}

	// A skill that is not on the card: failed at stage resolve.
	msg = a2a.NewMessage(a2a.MessageRoleUser)
	msg.Metadata = map[string]any{"skill": "globex__secret"}
	if task = sendTask(ctx, t, cl, msg); task.Status.State != a2a.TaskStateFailed ||
		!strings.Contains(textOf(task.Status.Message.Parts), "stage resolve") {
		t.Fatalf("unlisted skill = %s", mustJSON(t, task))
	}
}

func sendTask(ctx context.Context, t *testing.T, cl *a2aclient.Client, msg *a2a.Message) *a2a.Task {
	t.Helper()
	res, err := cl.SendMessage(ctx, &a2a.MessageSendParams{Message: msg})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	task, ok := res.(*a2a.Task)
	if !ok {
		t.Fatalf("result is %T, want a task", res)
	}
	return task
}

func dataPart(t *testing.T, parts a2a.ContentParts) map[string]any {
	t.Helper()
	for _, p := range parts {
		if d, ok := p.(a2a.DataPart); ok {
			return d.Data
		}
	}
	t.Fatalf("no data part in %v", parts)
	return nil
}

func textOf(parts a2a.ContentParts) string {
	var s strings.Builder
	for _, p := range parts {
		if tp, ok := p.(a2a.TextPart); ok {
			s.WriteString(tp.Text)
		}
	}
	return s.String()
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
