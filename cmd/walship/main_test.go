package main

import (
	"os/exec"
	"strings"
	"testing"
)

// walship is PostgreSQL's archive_command and restore_command: it starts
// once per WAL segment. client-go and controller-runtime would triple the
// CPU of each start (their package initialisation), so the Kubernetes code
// lives in walship-k8s; this keeps an import from pulling it back in.
func TestWalshipDoesNotLinkKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/") || strings.HasSuffix(pkg, "/walship/controllers") {
			t.Errorf("cmd/walship depends on %s; Kubernetes code belongs in cmd/walship-k8s", pkg)
		}
	}
}
