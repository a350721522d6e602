// Command a2atest is a small A2A agent (a2a-go, JSON-RPC over HTTP) for the
// a2a backend's tests: a separate process, as a real agent is. It listens on
// 127.0.0.1:0 and prints its base URL on stdout.
//
// The skill is chosen by the message's metadata "skill": echo (a completed
// task whose artifact is the input's data plus the agent's pid and the
// metadata keys it got), hello (a plain message), fail (a failed task whose
// message is "secret detail"), reject, ask (input-required), ticks (three
// artifact updates) and hang (ends only when cancelled).
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/a2aproject/a2a-go/a2asrv/eventqueue"
)

type agent struct{}

func (agent) Execute(ctx context.Context, rc *a2asrv.RequestContext, q eventqueue.Queue) error {
	skill, _ := rc.Message.Metadata["skill"].(string)
	status := func(state a2a.TaskState, text string) error {
		var msg *a2a.Message
		if text != "" {
			msg = a2a.NewMessageForTask(a2a.MessageRoleAgent, rc, a2a.TextPart{Text: text})
		}
		ev := a2a.NewStatusUpdateEvent(rc, state, msg)
		ev.Final = true
		return q.Write(ctx, ev)
	}
	if err := q.Write(ctx, a2a.NewStatusUpdateEvent(rc, a2a.TaskStateWorking, nil)); err != nil {
		return err
	}
	switch skill {
	case "echo":
		data := map[string]any{}
		text := ""
		for _, p := range rc.Message.Parts {
			switch p := p.(type) {
			case a2a.DataPart:
				data = p.Data
			case a2a.TextPart:
				text += p.Text
			}
		}
		data["pid"] = os.Getpid()
		data["metadata"] = slices.Sorted(maps.Keys(rc.Message.Metadata))
		if text != "" {
			data["text"] = text
		}
		if err := q.Write(ctx, a2a.NewArtifactEvent(rc, a2a.DataPart{Data: data})); err != nil {
			return err
		}
		return status(a2a.TaskStateCompleted, "")
	case "hello":
		return q.Write(ctx, a2a.NewMessage(a2a.MessageRoleAgent, a2a.TextPart{Text: "hello"}))
	case "fail":
		return status(a2a.TaskStateFailed, "secret detail")
	case "reject":
		return status(a2a.TaskStateRejected, "not for you")
	case "ask":
		return status(a2a.TaskStateInputRequired, "which branch?")
	case "ticks":
		var id a2a.ArtifactID
		for i := 1; i <= 3; i++ {
			var ev *a2a.TaskArtifactUpdateEvent
			if id == "" {
				ev = a2a.NewArtifactEvent(rc, a2a.DataPart{Data: map[string]any{"tick": i}})
				id = ev.Artifact.ID
			} else {
				ev = a2a.NewArtifactUpdateEvent(rc, id, a2a.DataPart{Data: map[string]any{"tick": i}})
			}
			if err := q.Write(ctx, ev); err != nil {
				return err
			}
		}
		return status(a2a.TaskStateCompleted, "")
	case "hang":
		<-ctx.Done()
		return ctx.Err()
	}
	return status(a2a.TaskStateRejected, "no skill "+skill)
}

func (agent) Cancel(ctx context.Context, rc *a2asrv.RequestContext, q eventqueue.Queue) error {
	ev := a2a.NewStatusUpdateEvent(rc, a2a.TaskStateCanceled, nil)
	ev.Final = true
	return q.Write(ctx, ev)
}

func main() {
	cardHost := flag.String("card-host", "", "put this host in the card's URL instead of the real one (a lying card)")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	base := "http://" + ln.Addr().String()
	endpoint := base + "/invoke"
	if *cardHost != "" {
		endpoint = strings.Replace(endpoint, "127.0.0.1", *cardHost, 1)
	}
	var skills []a2a.AgentSkill
	for _, s := range []string{"echo", "hello", "fail", "reject", "ask", "ticks", "hang"} {
		skills = append(skills, a2a.AgentSkill{ID: s, Name: s, Description: "the " + s + " skill", Tags: []string{"test"}})
	}
	card := &a2a.AgentCard{
		Name: "a2atest", Description: "test agent", URL: endpoint, PreferredTransport: a2a.TransportProtocolJSONRPC,
		ProtocolVersion: "0.3.0", Version: "1", Capabilities: a2a.AgentCapabilities{Streaming: true},
		DefaultInputModes: []string{"application/json"}, DefaultOutputModes: []string{"application/json"}, Skills: skills,
	}
	mux := http.NewServeMux()
	mux.Handle("/invoke", a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(agent{})))
	mux.Handle(a2asrv.WellKnownAgentCardPath, a2asrv.NewStaticAgentCardHandler(card))
	fmt.Println(base)
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
