package layers

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The size limits of docs/architecture.md: collective stays a thin API
// over the engines, and no function in it or in the packages it is built
// from grows past what a reader takes in at once.
const (
	maxCollectiveLines = 3000 // lines of non-test Go in collective/
	maxFuncLines       = 80
)

// TestSizes fails when collective's non-test code passes
// maxCollectiveLines or a function in collective, the engines,
// internal/cost, internal/order, internal/member, ring or tree passes
// maxFuncLines.
func TestSizes(t *testing.T) {
	top := root(t)
	total := 0
	for _, dir := range []string{"collective", "internal/engine", "internal/engine/shmem", "internal/engine/stream",
		"internal/cost", "internal/order", "internal/member", "ring", "tree"} {
		files, err := filepath.Glob(filepath.Join(top, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if dir == "collective" {
				total += bytes.Count(src, []byte("\n"))
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
				if n > maxFuncLines {
					t.Errorf("%s: %s is %d lines (at most %d)", filepath.Join(dir, filepath.Base(path)), fn.Name.Name, n, maxFuncLines)
				}
			}
		}
	}
	if total > maxCollectiveLines {
		t.Errorf("collective has %d lines of non-test code (at most %d): move logic into the engines or internal packages", total, maxCollectiveLines)
	}
	t.Logf("collective: %d lines of non-test code", total)
}
