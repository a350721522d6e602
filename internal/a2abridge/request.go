package a2abridge

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
)

// MaxInput bounds the input a message may carry (bytes of JSON).
const MaxInput = 1 << 20

// request is what a message asks: a skill, or a peer's capability, and the
// capability's JSON input.
type request struct {
	Skill            string
	Peer, Capability string
	Input            json.RawMessage
}

// parseMessage reads a client's message: the target from its metadata
// (MetaSkill, or MetaPeer and MetaCapability), the input from its parts. One
// data part is the input as it is; without one, the text parts joined are
// the input when they are JSON, else {"text": TEXT}; no parts is {}. File
// parts and several data parts are refused. The error names what is wrong in
// words a client can act on.
func parseMessage(m *a2a.Message) (*request, error) {
	if m == nil {
		return nil, errors.New("the request has no message")
	}
	q := &request{}
	q.Skill, _ = m.Metadata[MetaSkill].(string)
	q.Peer, _ = m.Metadata[MetaPeer].(string)
	q.Capability, _ = m.Metadata[MetaCapability].(string)
	switch {
	case q.Skill != "" && (q.Peer != "" || q.Capability != ""):
		return nil, errors.New("name either a skill or a peer and capability in the message metadata, not both")
	case q.Skill == "" && (q.Peer == "") != (q.Capability == ""):
		return nil, errors.New("metadata " + MetaPeer + " and " + MetaCapability + " go together")
	case q.Skill == "" && q.Peer == "":
		return nil, errors.New("name the skill to call in the message metadata, e.g. {\"" + MetaSkill + "\": \"PEER__CAPABILITY\"} (see the agent card)")
	}
	var data *a2a.DataPart
	var text strings.Builder
	for _, p := range m.Parts {
		switch p := p.(type) {
		case a2a.DataPart:
			if data != nil {
				return nil, errors.New("the message has more than one data part; send the input as one")
			}
			data = &p
		case *a2a.DataPart:
			if data != nil || p == nil {
				return nil, errors.New("the message has more than one data part; send the input as one")
			}
			data = p
		case a2a.TextPart:
			text.WriteString(p.Text)
		case *a2a.TextPart:
			if p != nil {
				text.WriteString(p.Text)
			}
		default:
			return nil, errors.New("only text and data parts are supported (no files): send the input as a data part or JSON text")
		}
		if text.Len() > MaxInput {
			return nil, errors.New("the input exceeds 1 MiB")
		}
	}
	var err error
	switch t := strings.TrimSpace(text.String()); {
	case data != nil:
		if data.Data == nil {
			q.Input = json.RawMessage(`{}`)
		} else {
			q.Input, err = json.Marshal(data.Data)
		}
	case t == "":
		q.Input = json.RawMessage(`{}`)
	case json.Valid([]byte(t)):
		q.Input = json.RawMessage(t)
	default:
		q.Input, err = json.Marshal(map[string]string{"text": t})
	}
	if err != nil {
		return nil, errors.New("the input cannot be encoded as JSON: " + err.Error())
	}
	if len(q.Input) > MaxInput {
		return nil, errors.New("the input exceeds 1 MiB")
	}
	return q, nil
}

// generic turns JSON into the plain values (maps, slices, strings, float64,
// bools) that a2a-go's task store can copy: it copies with gob, which refuses
// named types such as json.RawMessage inside metadata. Numbers beyond 2^53
// lose precision, as in any JSON client of JavaScript's.
func generic(raw []byte) (any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// dataOf makes output a data part's content: an object as it is, any other
// JSON value as {"value": V}.
func dataOf(output []byte) (map[string]any, error) {
	v, err := generic(output)
	if err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok {
		return m, nil
	}
	return map[string]any{"value": v}, nil
}
