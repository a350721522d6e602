package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/treaty-dev/treaty/internal/refusal"
)

// reasonSchema starts the reason of an input refused by its capability's
// input schema; the rest names what did not match.
const reasonSchema = "input_schema"

// inputSchema is a capability's input JSON Schema, compiled once per
// capability per configuration snapshot. References outside the schema are
// never fetched: a schema that has them does not compile.
type inputSchema struct {
	once     sync.Once
	resolved *jsonschema.Resolved // nil: no schema, every JSON input passes
	err      error
}

// compile resolves raw (a capability's input_schema); nil raw is no schema.
func (s *inputSchema) compile(raw map[string]any) error {
	s.once.Do(func() {
		if raw == nil {
			return
		}
		b, err := json.Marshal(raw)
		if err != nil {
			s.err = fmt.Errorf("input_schema: %w", err)
			return
		}
		var sc jsonschema.Schema
		if err := json.Unmarshal(b, &sc); err != nil {
			s.err = fmt.Errorf("input_schema is not a JSON Schema: %w", err)
			return
		}
		if s.resolved, err = sc.Resolve(nil); err != nil {
			s.err = fmt.Errorf("input_schema: %w", err)
			return
		}
		// A $schema version the validator does not support would refuse
		// every input; refuse the schema instead.
		if err := s.resolved.Validate(map[string]any{}); err != nil && strings.Contains(err.Error(), "cannot validate version") {
			s.resolved, s.err = nil, fmt.Errorf("input_schema: %w", err)
		}
	})
	return s.err
}

// checkInput refuses body, valid JSON, unless it matches cp's input schema.
// The refusal is at the screen stage, before the input is screened or
// reaches the backend; its reason is input_schema and what did not match.
func (cp *capability) checkInput(body []byte) error {
	if err := cp.input.compile(cp.Info.InputSchema); err != nil {
		return refusal.Wrap(refusal.StageInternal, err)
	}
	if cp.input.resolved == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return &refusal.Error{Stage: refusal.StageScreen, Reason: reasonSchema + ": not JSON", Err: err}
	}
	if err := cp.input.resolved.Validate(v); err != nil {
		return &refusal.Error{Stage: refusal.StageScreen, Reason: reasonSchema + ": " + mismatch(err), Err: err}
	}
	return nil
}

// mismatch names where and which keyword failed, from the innermost step of
// a validation error ("validating /properties/q: type: 7 has type integer,
// want string" gives "/properties/q: type"). It never quotes the input: the
// reason goes to the audit log, which may keep only digests of inputs.
func mismatch(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "validating "); i >= 0 {
		msg = msg[i+len("validating "):]
	}
	msg = strings.TrimPrefix(msg, "root: ")
	parts := strings.SplitN(msg, ": ", 3)
	switch {
	case parts[0] == "required": // the names come from the schema
		return msg
	case strings.HasPrefix(parts[0], "/") && len(parts) > 1:
		return parts[0] + ": " + parts[1]
	}
	return parts[0]
}
