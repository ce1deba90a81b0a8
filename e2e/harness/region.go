package harness

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Region is a Kubernetes region of real parts started by scripts/region.sh
// (a control plane and nodes running kubelet and containerd in namespaces of
// their own) for one test, and taken down when the test ends.
type Region struct {
	Name  string
	Nodes int
	root  string
}

// RegionsDir is where scripts/region.sh keeps each region's state.
func RegionsDir() string {
	if d := os.Getenv("WALSHIP_REGIONS"); d != "" {
		return d
	}
	return "/var/lib/walship-regions"
}

// NeedRoot fails the test when it cannot make namespaces, mounts and cgroups;
// outside CI it skips instead, so a non-root developer can run the rest.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("regions need root (namespaces, mounts, cgroups); CI runs as root")
	}
	t.Skip("regions need root")
}

// StartRegion brings region name up with the given number of nodes. A region
// of that name left by an earlier run is taken down first.
func StartRegion(t testing.TB, name string, nodes int) *Region {
	t.Helper()
	NeedRoot(t)
	r := &Region{Name: name, Nodes: nodes, root: ModuleRoot(t)}
	if out, err := r.Script(t, "down", name); err != nil {
		t.Fatalf("region.sh down %s before the test: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			r.dumpLogs(t)
		}
		if out, err := r.Script(t, "down", name); err != nil {
			t.Errorf("region.sh down %s: %v\n%s", name, err, out)
		}
	})
	start := time.Now()
	if out, err := r.Script(t, "up", name, "--nodes", strconv.Itoa(nodes)); err != nil {
		r.dumpLogs(t)
		t.Fatalf("region.sh up %s: %v\n%s", name, err, out)
	}
	t.Logf("region %s with %d node(s) up in %s", name, nodes, time.Since(start).Round(time.Second))
	return r
}

// Script runs scripts/region.sh with args and returns its combined output.
func (r *Region) Script(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return RegionScript(t, args...)
}

// RegionScript runs scripts/region.sh with args and returns its combined output.
func RegionScript(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(ModuleRoot(t), "scripts/region.sh")}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Kubectl runs kubectl in the region and returns its stdout; stderr is in
// the error.
func (r *Region) Kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return r.KubectlIn(t, "", args...)
}

// KubectlIn is Kubectl with stdin.
func (r *Region) KubectlIn(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(r.root, "scripts/region.sh"), "exec", r.Name, "kubectl"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &KubectlError{Args: args, Err: err, Stderr: errb.String()}
	}
	return out.String(), nil
}

// MustKubectl is Kubectl that fails the test on an error.
func (r *Region) MustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := r.Kubectl(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Apply applies a manifest.
func (r *Region) Apply(t testing.TB, manifest string) {
	t.Helper()
	if _, err := r.KubectlIn(t, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// Dir is the region's state folder; node i's per-node folders (volumes,
// cni-state, ...) are under nodes/n<i>.
func (r *Region) Dir() string { return filepath.Join(RegionsDir(), r.Name) }

// KubectlError is a failed kubectl call.
type KubectlError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *KubectlError) Error() string {
	return "kubectl " + strings.Join(e.Args, " ") + ": " + e.Err.Error() + ": " + strings.TrimSpace(e.Stderr)
}

func (r *Region) dumpLogs(t testing.TB) {
	logs, _ := filepath.Glob(filepath.Join(r.Dir(), "logs", "*.log"))
	for _, l := range logs {
		t.Logf("--- %s (last lines)\n%s", filepath.Base(l), logTail(l, 15))
	}
	if out, err := r.Kubectl(t, "get", "pods", "-A", "-o", "wide"); err == nil {
		t.Logf("--- pods\n%s", out)
	}
	if out, err := r.Kubectl(t, "get", "events", "-A", "--sort-by=.lastTimestamp"); err == nil {
		t.Logf("--- events\n%s", tailLines(out, 30))
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
