package v1_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"
)

// TestCRDsAreInstalled checks what `kubectl get` shows: the CRD is
// established, with its short name, categories and printer columns.
func TestCRDsAreInstalled(t *testing.T) {
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := env.Client.Get(ctx(t), client.ObjectKey{Name: "clusters.postgresql.walship.io"}, crd); err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	established := false
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			established = true
		}
	}
	if !established {
		t.Errorf("CRD clusters.postgresql.walship.io is not established: %v", conds)
	}
	short, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
	if strings.Join(short, ",") != "pgc" {
		t.Errorf("short names %v, want [pgc]", short)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var columns []string
	for _, v := range versions {
		cols, _, _ := unstructured.NestedSlice(v.(map[string]any), "additionalPrinterColumns")
		for _, c := range cols {
			columns = append(columns, c.(map[string]any)["name"].(string))
		}
	}
	if got := strings.Join(columns, ","); got != "Instances,Ready,Status,Primary,Age" {
		t.Errorf("printer columns %s, want Instances,Ready,Status,Primary,Age", got)
	}
}

// TestSamplesApply creates every object of every file in config/samples, as
// `kubectl apply -f config/samples/` would, in a namespace of its own.
func TestSamplesApply(t *testing.T) {
	ns := env.Namespace(t)
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no samples in config/samples")
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			objs := readObjects(t, f)
			if len(objs) == 0 {
				t.Fatalf("%s holds no object", f)
			}
			for _, o := range objs {
				o.SetNamespace(ns)
				if err := env.Client.Create(ctx(t), o); err != nil {
					t.Errorf("%s: %s %s: %v", filepath.Base(f), o.GetKind(), o.GetName(), err)
				}
			}
		})
	}
}

// TestKustomizationListsEveryCRD: config/crd/kustomization.yaml names each
// generated CRD, so `kubectl apply -k config/default` installs them all.
func TestKustomizationListsEveryCRD(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(env.Root, "config", "crd", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := sigsyaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(env.Root, "config", "crd", "bases", "*.yaml"))
	var want []string
	for _, f := range files {
		want = append(want, "bases/"+filepath.Base(f))
	}
	sort.Strings(want)
	sort.Strings(k.Resources)
	if strings.Join(k.Resources, " ") != strings.Join(want, " ") {
		t.Errorf("config/crd/kustomization.yaml lists %v; config/crd/bases holds %v: list each CRD there", k.Resources, want)
	}
}

// readObjects decodes every document of a YAML file.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		o := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &o.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(o.Object) == 0 { // a document of comments only
			continue
		}
		objs = append(objs, o)
	}
}

// TestDefaultKustomizationApplies builds config/default with kubectl's
// kustomize and submits every object to the API server: the namespace for
// real, the rest as a server-side dry run (schemas, RBAC references,
// Deployment fields are all checked). The CRDs are installed already.
func TestDefaultKustomizationApplies(t *testing.T) {
	kubectl := filepath.Join(env.Assets, "kubectl")
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(env.Root, "config", "default")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize config/default: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("kubectl kustomize config/default: %v (kubectl is built by make tools)", err)
	}
	f := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(f, out, 0o644); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range readObjects(t, f) {
		kinds[o.GetKind()]++
		switch o.GetKind() {
		case "CustomResourceDefinition":
			continue
		case "Namespace":
			if err := env.Client.Create(ctx(t), o); err != nil {
				t.Fatalf("Namespace %s: %v", o.GetName(), err)
			}
		default:
			if err := env.Client.Create(ctx(t), o, client.DryRunAll); err != nil {
				t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	for _, k := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
		"ClusterRoleBinding", "Role", "RoleBinding", "Deployment"} {
		if kinds[k] == 0 {
			t.Errorf("config/default has no %s", k)
		}
	}
}
