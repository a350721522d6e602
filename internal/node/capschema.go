package node

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/trust"
)

// acceptSchema screens a peer's input schema as acceptCaps screens its
// description: agents read a schema's text (property descriptions, titles,
// enum values) the same way, and the bridges hand it to them. A schema
// whose keys or strings hide control or format characters, or whose text
// the screen does not pass, is replaced by an empty object schema saying
// why.
func (n *Node) acceptSchema(st *state, p Peer, schema map[string]any) map[string]any {
	if schema == nil {
		return nil
	}
	var text strings.Builder
	if !schemaText(schema, &text) {
		n.observe(p.ID, trust.KindScreenMark, capsCapability)
		return withheldSchema("control or format characters")
	}
	if vd := n.screener.Screen(st.cfg.ScreenPolicyFor(p.ID.String(), capsCapability), []byte(text.String())); vd.Action != screen.ActionPass {
		n.observe(p.ID, trust.KindScreenMark, capsCapability)
		return withheldSchema(fmt.Sprintf("screen score %.2f, %s", vd.Score, strings.Join(vd.Reasons, ", ")))
	}
	return schema
}

// schemaText writes v's keys and strings to b, one a line; false when one
// holds a control or format character other than newline and tab.
func schemaText(v any, b *strings.Builder) bool {
	plain := func(s string) bool {
		b.WriteString(s)
		b.WriteByte('\n')
		return !strings.ContainsFunc(s, func(r rune) bool {
			return r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r))
		})
	}
	switch v := v.(type) {
	case string:
		return plain(v)
	case map[string]any:
		for k, e := range v {
			if !plain(k) || !schemaText(e, b) {
				return false
			}
		}
	case []any:
		for _, e := range v {
			if !schemaText(e, b) {
				return false
			}
		}
	}
	return true
}

func withheldSchema(why string) map[string]any {
	return map[string]any{"type": "object", "description": "[input schema withheld by treaty: " + why + "]"}
}
