package config_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/wire"
)

// configDoc is the configuration reference, relative to this package.
const configDoc = "../../docs/configuration.md"

// fencedBlocks returns the bodies of the ```lang blocks in md, with the line
// each starts on.
func fencedBlocks(t *testing.T, md, lang string) (blocks []string, lines []int) {
	t.Helper()
	var cur []string
	in, start := false, 0
	for i, line := range strings.Split(md, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```"+lang:
			in, start, cur = true, i+2, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks, lines = append(blocks, strings.Join(cur, "\n")+"\n"), append(lines, start)
		case in:
			cur = append(cur, line)
		}
	}
	if in {
		t.Fatalf("%s: ```%s block starting at line %d is not closed", configDoc, lang, start)
	}
	return blocks, lines
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatalf("the configuration reference must ship with the code: %v", err)
	}
	return string(b)
}

// TestDocsYAMLExamplesParse parses every yaml example in docs/configuration.md
// with the real schema (unknown keys rejected, every field validated), so an
// example a user copies always loads.
func TestDocsYAMLExamplesParse(t *testing.T) {
	blocks, lines := fencedBlocks(t, readDoc(t), "yaml")
	if len(blocks) < 9 {
		t.Fatalf("%s has %d yaml examples; want one per section and a full file", configDoc, len(blocks))
	}
	for i, b := range blocks {
		c, err := config.Parse([]byte(b))
		if err != nil {
			t.Errorf("%s: yaml example at line %d does not load: %v", configDoc, lines[i], err)
			continue
		}
		// A running node also checks the limits against the wire layer's
		// bounds, which are tighter than the file's for two of them.
		l := wire.Limits{
			MaxBodyBytes:         c.Limits.MaxBodyBytes,
			MaxHeaderBytes:       c.Limits.MaxHeaderBytes,
			TimeToFirstByte:      c.Limits.TimeToFirstByte.D(),
			CallTimeout:          c.Limits.CallTimeout.D(),
			MaxConcurrentPerPeer: c.Limits.MaxConcurrentPerPeer,
		}.WithDefaults()
		if err := l.Validate(); err != nil {
			t.Errorf("%s: yaml example at line %d: a node would refuse its limits: %v", configDoc, lines[i], err)
		}
	}
}

// TestDocsCedarExamplesParse parses every cedar example with the policy engine.
func TestDocsCedarExamplesParse(t *testing.T) {
	blocks, lines := fencedBlocks(t, readDoc(t), "cedar")
	if len(blocks) == 0 {
		t.Fatalf("%s has no cedar examples", configDoc)
	}
	for i, b := range blocks {
		if _, err := policy.Parse("example", []byte(b)); err != nil {
			t.Errorf("%s: cedar example at line %d does not parse: %v", configDoc, lines[i], err)
		}
	}
}

// TestDocsCoverEveryKey fails when treaty.yaml has a key that
// docs/configuration.md does not name, written as its full path in backticks
// (`budget.breaker.min_calls`, `peers[].addr`), so a new key cannot ship
// undocumented.
func TestDocsCoverEveryKey(t *testing.T) {
	doc := readDoc(t)
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_][a-z0-9_]*(?:\\[\\])?(?:\\.[a-z_][a-z0-9_]*(?:\\[\\])?)*)`").FindAllStringSubmatch(doc, -1) {
		named[m[1]] = true
	}
	keys := yamlKeys(reflect.TypeFor[config.Config](), "")
	if len(keys) < 50 {
		t.Fatalf("found only %d keys in config.Config; the walk is broken", len(keys))
	}
	for _, k := range keys {
		if !named[k] && !named[leafOfSharedType(k)] {
			t.Errorf("%s does not document treaty.yaml key `%s`: add it to its section's table", configDoc, k)
		}
	}
}

// leafOfSharedType maps a key inside a policy or limit shared by a section's
// default and its rules to the name the shared table uses: the sanitize and
// screen policy tables name `secrets`, `action` and so on once, and the budget
// limit table names `rate` once.
func leafOfSharedType(k string) string {
	for _, p := range []string{"sanitize.default.", "sanitize.rules[].", "screen.default.", "screen.rules[].", "budget.default.", "budget.rules[]."} {
		if rest, ok := strings.CutPrefix(k, p); ok {
			return rest
		}
	}
	return k
}

// yamlKeys lists the dotted paths of every leaf key under t, as treaty.yaml
// spells them: lists get "[]", inline fields flatten, maps and scalars are
// leaves; a section or list is covered by documenting its leaves.
func yamlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if slices.Contains(strings.Split(opts, ","), "inline") || (f.Anonymous && name == "") {
			out = append(out, yamlKeys(ft, prefix)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path := prefix + name
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, yamlKeys(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, yamlKeys(ft.Elem(), path+"[].")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

// TestDocsHandWrittenPolicyMeansWhatItSays evaluates the hand-written Cedar
// example against the claims in its comments.
func TestDocsHandWrittenPolicyMeansWhatItSays(t *testing.T) {
	blocks, _ := fencedBlocks(t, readDoc(t), "cedar")
	i := slices.IndexFunc(blocks, func(b string) bool { return strings.Contains(b, "forbid") })
	if i < 0 {
		t.Fatalf("%s: no hand-written cedar example with a forbid", configDoc)
	}
	// A grant of deploy to everyone, so that only the forbid can refuse it.
	src := blocks[i] + `permit (principal, action, resource == Capability::"deploy");` + "\n"
	e, err := policy.Parse("example", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	globex, err := identity.ParseDID("did:key:z6MkvUdw8DwPZFzm9ihkPNtdYbr7iF2BKb49fdEGHTifzdpe")
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.ParseDID("did:key:z6MknmsX2VJjsAmkeQ65xWp63ij9JjG3YcxfcF2jLjzPrNcd")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		peer  identity.PublicKey
		cap   string
		ctx   policy.Context
		allow bool
	}{
		{"trusted peer searches directly", other, "search", policy.Context{Trust: 0.7, Level: "trusted"}, true},
		{"trusted peer searches on behalf of another", other, "search", policy.Context{Trust: 0.7, Level: "trusted", Depth: 1}, false},
		{"provisional peer searches", other, "search", policy.Context{Trust: 0.5, Level: "provisional"}, false},
		{"globex reviews for one other org", globex, "code-review", policy.Context{Trust: 0.5, Level: "provisional", Depth: 1}, true},
		{"globex reviews for two", globex, "code-review", policy.Context{Trust: 0.5, Level: "provisional", Depth: 2}, false},
		{"another peer reviews", other, "code-review", policy.Context{Trust: 0.9, Level: "high"}, false},
		{"provisional peer deploys", other, "deploy", policy.Context{Trust: 0.5, Level: "provisional"}, false},
		{"trusted peer deploys", other, "deploy", policy.Context{Trust: 0.7, Level: "trusted"}, true},
	} {
		if got := e.Authorize(c.peer, policy.ActionCall, c.cap, c.ctx).Allowed; got != c.allow {
			t.Errorf("%s: allowed = %v, want %v", c.name, got, c.allow)
		}
	}
}
