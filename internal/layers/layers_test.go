package layers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/ringo-ml/ringo/"

// root is the module's directory.
func root(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// packages maps every package directory of the module (relative path) to
// the non-test Go files in it, parsed.
func packages(t *testing.T, top string) map[string][]*ast.File {
	pkgs := map[string][]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != top && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() && path != top {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a module of its own (examples/gorgonia)
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		for _, c := range f.Comments {
			if strings.HasPrefix(c.Text(), "go:build ignore") || strings.Contains(c.List[0].Text, "//go:build ignore") {
				return nil // a generator run by go generate, not part of the package
			}
		}
		rel, _ := filepath.Rel(top, filepath.Dir(path))
		pkgs[filepath.ToSlash(rel)] = append(pkgs[filepath.ToSlash(rel)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestLayering: every package of the module is in a layer, and imports
// only packages of lower layers (or the same-layer edges listed).
func TestLayering(t *testing.T) {
	layerOf := map[string]int{}
	for i, l := range Layers {
		for _, p := range l.Packages {
			layerOf[p] = i
		}
	}
	pkgs := packages(t, root(t))
	for pkg, files := range pkgs {
		li, ok := layerOf[pkg]
		if !ok {
			t.Errorf("package %s is in no layer: add it to layers.Layers and to docs/architecture.md", pkg)
			continue
		}
		for _, f := range files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				dep, ok := strings.CutPrefix(path, module)
				if !ok {
					continue
				}
				lj, known := layerOf[dep]
				switch {
				case !known:
					t.Errorf("%s imports %s, which is in no layer", pkg, dep)
				case lj < li, slices.Contains(SameLayer[pkg], dep):
				default:
					t.Errorf("%s (layer %q) imports %s (layer %q): a package may import lower layers only",
						pkg, Layers[li].Name, dep, Layers[lj].Name)
				}
			}
		}
	}
	for p := range layerOf {
		if _, ok := pkgs[p]; !ok {
			t.Errorf("layers.Layers lists %s, which is not a package of the module", p)
		}
	}
}

// TestArchitectureDoc: docs/architecture.md names every package.
func TestArchitectureDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range Layers {
		for _, p := range l.Packages {
			if p != "internal/layers" && !strings.Contains(string(doc), p) {
				t.Errorf("docs/architecture.md does not name %s", p)
			}
		}
	}
}

// TestNoSockets: the API and the engines open no socket themselves.
func TestNoSockets(t *testing.T) {
	top := root(t)
	fset := token.NewFileSet()
	for _, pkg := range NoSockets {
		files, err := filepath.Glob(filepath.Join(top, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				if strings.Contains(imp.Path.Value, "quic-go") {
					t.Errorf("%s imports quic-go", path)
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "net" &&
					(strings.HasPrefix(sel.Sel.Name, "Listen") || strings.HasPrefix(sel.Sel.Name, "Dial") || strings.HasPrefix(sel.Sel.Name, "Resolve")) {
					t.Errorf("%s: net.%s: open sockets through internal/transport", fset.Position(sel.Pos()), sel.Sel.Name)
				}
				return true
			})
		}
	}
}
