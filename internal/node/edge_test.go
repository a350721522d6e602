package node

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// edgeFuncs are the only functions that may put bytes on a connection to a
// peer (see edge.go). Each takes a sanitize.Clean or sends no body.
var edgeFuncs = map[string]bool{
	"reply": true, "replyEmpty": true, "acceptCall": true, "setEvidence": true, "openStream": true,
	"roundTrip": true,
}

// rawPeerWrites reports calls in src that write to a peer outside edgeFuncs:
// any use of the inbound response writer (in.w), the federation HTTP client
// (n.client.Do and friends), a stream writer made directly, or http.Error.
func rawPeerWrites(t *testing.T, fset *gotoken.FileSet, f *ast.File) []string {
	t.Helper()
	var bad []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Body == nil || edgeFuncs[fn.Name.Name] {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, _ := sel.X.(*ast.Ident)
			inner, _ := sel.X.(*ast.SelectorExpr) // n.client.Do: a use, not the construction in Open
			switch {
			case x != nil && x.Name == "in" && sel.Sel.Name == "w",
				inner != nil && inner.Sel.Name == "client",
				x != nil && x.Name == "wire" && sel.Sel.Name == "NewStreamWriter",
				x != nil && x.Name == "http" && sel.Sel.Name == "Error":
				bad = append(bad, fset.Position(sel.Pos()).String()+" in "+fn.Name.Name)
			}
			return true
		})
	}
	return bad
}

// TestOnlyTheEdgeWritesToPeers keeps "scrub before send" structural: a raw
// write to a peer added anywhere but the edge functions fails this test.
func TestOnlyTheEdgeWritesToPeers(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := gotoken.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range rawPeerWrites(t, fset, f) {
			t.Errorf("raw write to a peer outside the edge (edge.go): %s", b)
		}
	}
}

// TestEdgeCheckCatchesRawWrites shows the check above can fail.
func TestEdgeCheckCatchesRawWrites(t *testing.T) {
	const src = `package node
func (in *inbound) leak(b []byte) { in.w.Write(b) }
func (n *Node) leak2() { n.client.Do(nil) }
func (in *inbound) leak3() { http.Error(in.w, "x", 500) }
func (in *inbound) reply() { in.w.Write(nil) }
`
	fset := gotoken.NewFileSet()
	f, err := parser.ParseFile(fset, "fixture.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := rawPeerWrites(t, fset, f)
	if len(got) != 4 { // leak, leak2, and both selectors in leak3; reply is allowed
		t.Fatalf("flagged %d raw writes, want 4: %v", len(got), got)
	}
}
