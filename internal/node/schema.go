package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// reasonSchema starts the reason of an input refused by its capability's
// input schema; reasonOutputSchema that of a result refused by its output
// schema. The rest names what did not match.
const (
	reasonSchema       = "input_schema"
	reasonOutputSchema = "output_schema"
)

// jsonSchema is a capability's input or output JSON Schema, compiled once
// per capability per configuration snapshot. References outside the schema
// are never fetched: a schema that has them does not compile.
type jsonSchema struct {
	once     sync.Once
	resolved *jsonschema.Resolved // nil: no schema, every JSON value passes
	err      error
}

// compile resolves raw (the capability's key field, input_schema or
// output_schema); nil raw is no schema.
func (s *jsonSchema) compile(field string, raw map[string]any) error {
	s.once.Do(func() {
		s.resolved, s.err = resolveSchema(field, raw)
	})
	return s.err
}

func resolveSchema(field string, raw map[string]any) (*jsonschema.Resolved, error) {
	if raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	var sc jsonschema.Schema
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("%s is not a JSON Schema: %w", field, err)
	}
	r, err := sc.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	// A $schema version the validator does not support would refuse every
	// value; refuse the schema instead.
	if err := r.Validate(map[string]any{}); err != nil && strings.Contains(err.Error(), "cannot validate version") {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return r, nil
}

// CheckSchema reports whether raw compiles as a capability's field
// (input_schema or output_schema) would at load: a JSON Schema, draft
// 2020-12 or draft-07, with no reference outside itself. treaty expose uses
// it to refuse a bad schema file before it reaches treaty.yaml.
func CheckSchema(field string, raw map[string]any) error {
	_, err := resolveSchema(field, raw)
	return err
}

// checkInput refuses body, valid JSON, unless it matches cp's input schema.
// The refusal is at the screen stage, before the input is screened or
// reaches the backend; its reason is input_schema and what did not match.
func (cp *capability) checkInput(body []byte) error {
	if err := cp.input.compile("input_schema", cp.Info.InputSchema); err != nil {
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

// checkOutput refuses out, a unary backend's result (or one event of a
// stream), unless it is JSON matching cp's output schema. The refusal is at
// the backend stage, before the result is sanitized, audited as served or
// sent: the caller gets only the reason, output_schema and what did not
// match. A backend that breaks its advertised contract is a failed backend.
func (cp *capability) checkOutput(out []byte) error {
	if err := cp.output.compile("output_schema", cp.Info.OutputSchema); err != nil {
		return refusal.Wrap(refusal.StageInternal, err)
	}
	if cp.output.resolved == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		return outputRefused("not JSON")
	}
	if err := cp.output.resolved.Validate(v); err != nil {
		return outputRefused(mismatch(err))
	}
	return nil
}

// outputRefused is a backend-stage refusal of a result. The validator's
// message is not kept: it may quote the result, which must not leave or be
// logged.
func outputRefused(what string) error {
	reason := reasonOutputSchema + ": " + what
	return &refusal.Error{Stage: refusal.StageBackend, Reason: reason, Err: &backend.Failure{Reason: reason}}
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
