package wire

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates package fb from frame.fbs and
// compares it byte for byte with the committed files.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	flatc, err := exec.LookPath("flatc")
	if err != nil {
		t.Skip("flatc not on PATH; cannot check that fb/ matches frame.fbs (apt-get install flatbuffers-compiler)")
	}
	dir := t.TempDir()
	if out, err := exec.Command(flatc, "--go", "-o", dir, "frame.fbs").CombinedOutput(); err != nil {
		t.Fatalf("flatc: %v\n%s", err, out)
	}
	list := func(d string) []string {
		m, err := filepath.Glob(filepath.Join(d, "fb", "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range m {
			if f := filepath.Base(f); f != "doc.go" { // the package comment, ours
				names = append(names, f)
			}
		}
		slices.Sort(names)
		return names
	}
	fresh, committed := list(dir), list(".")
	if !slices.Equal(fresh, committed) {
		t.Fatalf("flatc generates %v, fb/ holds %v; run go generate ./internal/wire", fresh, committed)
	}
	for _, name := range fresh {
		want, err := os.ReadFile(filepath.Join(dir, "fb", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("fb", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("fb/%s is stale; run go generate ./internal/wire", name)
		}
	}
}
