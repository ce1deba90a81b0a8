package region

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/e2e/harness"
)

// leftovers lists what of region name is still on the machine: processes in
// its cgroups, its network namespaces, mounts below its folder, its cgroups
// and its folder.
func leftovers(t *testing.T, name string) []string {
	t.Helper()
	var left []string
	dir := filepath.Join(harness.RegionsDir(), name)
	hier, _ := filepath.Glob("/sys/fs/cgroup/*/wsr-" + name)
	for _, h := range hier {
		left = append(left, "cgroup "+h)
		filepath.Walk(h, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Name() == "cgroup.procs" {
				if b, _ := os.ReadFile(p); len(strings.TrimSpace(string(b))) > 0 {
					left = append(left, "processes in "+p+": "+strings.Join(strings.Fields(string(b)), " "))
				}
			}
			return nil
		})
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "wsr-"+name+"-") {
			left = append(left, "network namespace "+f[0])
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if fields := strings.Fields(s.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
				left = append(left, "mount "+fields[4])
			}
		}
		f.Close()
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "folder "+dir)
	}
	return left
}

// TestRegionLifecycle: clear messages on bad input; kill is a disaster from
// which up recovers; down leaves nothing behind.
func TestRegionLifecycle(t *testing.T) {
	harness.NeedRoot(t)
	const name = "life"
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := harness.RegionScript(t, args...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("region.sh %s: %v, %q; want a failure saying %q", strings.Join(args, " "), err, out, want)
		}
	}
	if out, err := harness.RegionScript(t, "down", "nothere"); err != nil || !strings.Contains(out, "region nothere does not exist") {
		t.Errorf("down of a region that does not exist: %v, %q; want success saying so", err, out)
	}
	fails("unknown command 'bogus'", "bogus")
	fails("region life is not up", "exec", name, "kubectl", "get", "nodes")
	fails("--nodes wants 1 to 9", "up", name, "--nodes", "0")
	fails("region name 'Bad_Name'", "up", "Bad_Name")

	r := harness.StartRegion(t, name, 1)
	fails("region life is already up", "up", name)
	fails("unknown action 'reboot'", "node", name, "1", "reboot")
	fails("region life has no node 7", "node", name, "7", "kill")
	r.Apply(t, clientPod("before", ""))
	waitReady(t, r, "pod/before")

	if out, err := r.Script(t, "kill", name); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	for _, l := range leftovers(t, name) {
		if strings.HasPrefix(l, "processes") {
			t.Errorf("after kill: %s", l)
		}
	}
	if _, err := r.Kubectl(t, "get", "nodes"); err == nil {
		t.Error("kubectl answered after every process of the region was killed")
	}

	fails("region life is not up", "exec", name, "kubectl", "get", "nodes")

	// up after kill: the leftovers go, and the region works again.
	if out, err := r.Script(t, "up", name); err != nil || !strings.Contains(out, "leftovers") {
		t.Fatalf("up after kill: %v\n%s", err, out)
	}
	r.Apply(t, clientPod("after", ""))
	waitReady(t, r, "pod/after")

	if out, err := r.Script(t, "down", name); err != nil || !strings.Contains(out, "region life is down") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if left := leftovers(t, name); len(left) > 0 {
		t.Fatalf("down left:\n%s", strings.Join(left, "\n"))
	}
	fails("region life is not up", "exec", name, "kubectl", "get", "nodes")
}
