package v1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	v1 "github.com/walship/walship/api/v1"
)

// The test reads the package's sources through controller-gen, which go test's
// cache does not see; importing the package at least makes a change to it
// rerun the test. (make test runs with -count=1 anyway.)
var _ = v1.GroupVersion

// TestGeneratedFilesAreCurrent runs controller-gen (scripts/generate.sh) into a
// temporary folder and compares the result with the committed deepcopy code,
// CRDs and RBAC role, so a change to the types or markers without
// `make generate` fails here.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root := moduleRoot(t)
	cg := controllerGen(t, root)
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "generate.sh"), out)
	cmd.Env = append(os.Environ(), "CONTROLLER_GEN="+cg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/generate.sh: %v\n%s", err, b)
	}

	generated := listFiles(t, out)
	// Every generated file must be committed with the same content...
	for _, rel := range generated {
		want, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s is missing: run make generate and commit it", rel)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make generate and commit it", rel)
		}
	}
	// ...and no generated file may be left over from a kind or rule that is gone.
	fresh := map[string]bool{}
	for _, rel := range generated {
		fresh[rel] = true
	}
	committed, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	committed = append(committed, filepath.Join(root, "config", "rbac", "role.yaml"),
		filepath.Join(root, "api", "v1", "zz_generated.deepcopy.go"))
	for _, p := range committed {
		rel, _ := filepath.Rel(root, p)
		if _, err := os.Stat(p); err == nil && !fresh[rel] {
			t.Errorf("%s is no longer generated: run make generate and delete it", rel)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
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
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// controllerGen finds the binary make generate uses: $CONTROLLER_GEN, else
// bin/controller-gen-<version>/controller-gen with the version that
// scripts/ensure-controller-gen.sh pins.
func controllerGen(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("CONTROLLER_GEN"); p != "" {
		return p
	}
	script, err := os.ReadFile(filepath.Join(root, "scripts", "ensure-controller-gen.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VER=(\S+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no VER= line in scripts/ensure-controller-gen.sh")
	}
	p := filepath.Join(root, "bin", "controller-gen-"+string(m[1]), "controller-gen")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("controller-gen %s is not built (%v): run make tools, or set CONTROLLER_GEN", m[1], err)
	}
	return p
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}
