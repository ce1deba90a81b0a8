package region

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
)

// TestThreeNodeRegion: pods on different nodes talk through a Service; a
// drain moves a Deployment's pod while a pod bound to a volume on the drained
// node stays Pending with the scheduler's reason; a killed node goes NotReady
// within the node-monitor grace period, its pods are evicted, and it comes
// back when started.
func TestThreeNodeRegion(t *testing.T) {
	r := harness.StartRegion(t, "three", 3)

	t.Run("ServiceAcrossNodes", func(t *testing.T) {
		r.Apply(t, echoServer("echo", "three-node1"))
		r.Apply(t, clientPod("client", "three-node2"))
		waitReady(t, r, "pod/echo")
		waitReady(t, r, "pod/client")
		out, err := greeting(t, r, "client", "echo")
		if err != nil || out != "hello from echo" {
			t.Fatalf("client on node 2 to echo on node 1: %q, %v", out, err)
		}
	})

	t.Run("Drain", func(t *testing.T) {
		// A pod whose volume lives on one node, as a local disk or an EBS
		// volume in one zone.
		r.Apply(t, `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: disk}
spec:
  serviceName: disk
  replicas: 1
  selector: {matchLabels: {app: disk}}
  template:
    metadata: {labels: {app: disk}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: docker.io/library/postgres:15
        imagePullPolicy: IfNotPresent
        command: [sleep, infinity]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
`)
		waitReady(t, r, "pod/disk-0")
		node := r.MustKubectl(t, "get", "pod", "disk-0", "-o", "jsonpath={.spec.nodeName}")
		r.Apply(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: mover}
spec:
  replicas: 1
  selector: {matchLabels: {app: mover}}
  template:
    metadata: {labels: {app: mover}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference: {matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [%s]}]}
      containers:
      - name: c
        image: docker.io/library/postgres:15
        imagePullPolicy: IfNotPresent
        command: [sleep, infinity]
`, node))
		if _, err := r.Kubectl(t, "rollout", "status", "deploy/mover", "--timeout=120s"); err != nil {
			t.Fatal(err)
		}
		if on := r.MustKubectl(t, "get", "pods", "-l", "app=mover", "-o", "jsonpath={.items[0].spec.nodeName}"); on != node {
			t.Fatalf("the Deployment's pod runs on %s, want %s (its preferred node)", on, node)
		}

		if _, err := r.Kubectl(t, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"); err != nil {
			t.Fatal(err)
		}
		defer r.Kubectl(t, "uncordon", node)
		if _, err := r.Kubectl(t, "rollout", "status", "deploy/mover", "--timeout=120s"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "the Deployment's pod Running on another node", func() bool {
			out, _ := r.Kubectl(t, "get", "pods", "-l", "app=mover", "-o",
				`jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{"\n"}{end}`)
			f := strings.Fields(out)
			return len(f) == 2 && f[0] != node && f[1] == "Running"
		})
		var why string
		waitFor(t, 60*time.Second, "disk-0 Pending with the scheduler's reason", func() bool {
			why, _ = r.Kubectl(t, "get", "pod", "disk-0", "-o",
				`jsonpath={.status.phase} {.status.conditions[?(@.type=="PodScheduled")].reason}: {.status.conditions[?(@.type=="PodScheduled")].message}`)
			return strings.HasPrefix(why, "Pending Unschedulable:")
		})
		if !strings.Contains(why, "unschedulable") && !strings.Contains(why, "volume node affinity conflict") {
			t.Errorf("disk-0 is pending for another reason: %s", why)
		}
		t.Logf("disk-0 after the drain of %s: %s", node, why)
	})

	t.Run("NodeKillAndStart", func(t *testing.T) {
		r.Apply(t, `apiVersion: v1
kind: Pod
metadata: {name: victim}
spec:
  nodeName: three-node3
  terminationGracePeriodSeconds: 1
  tolerations:
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
  - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
  containers:
  - name: c
    image: docker.io/library/postgres:15
    imagePullPolicy: IfNotPresent
    command: [sleep, infinity]
`)
		waitReady(t, r, "pod/victim")
		if out, err := r.Script(t, "node", "three", "3", "kill"); err != nil {
			t.Fatalf("node kill: %v\n%s", err, out)
		}
		killed := time.Now()
		// The grace period is 20 s (region.sh); the controller looks every 5 s.
		waitFor(t, 45*time.Second, "three-node3 not Ready", func() bool {
			out, _ := r.Kubectl(t, "get", "node", "three-node3", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return out != "" && out != "True"
		})
		t.Logf("three-node3 not Ready %s after it was killed", time.Since(killed).Round(time.Second))
		waitFor(t, 60*time.Second, "the pod on the dead node marked for eviction", func() bool {
			out, err := r.Kubectl(t, "get", "pod", "victim", "-o", "jsonpath={.metadata.deletionTimestamp}")
			return out != "" || (err != nil && strings.Contains(err.Error(), "NotFound"))
		})

		if out, err := r.Script(t, "node", "three", "3", "start"); err != nil {
			t.Fatalf("node start: %v\n%s", err, out)
		}
		if _, err := r.Kubectl(t, "wait", "--for=condition=Ready", "node/three-node3", "--timeout=90s"); err != nil {
			t.Fatal(err)
		}
		r.Apply(t, clientPod("reborn", "three-node3"))
		waitReady(t, r, "pod/reborn")
	})
}

// TestTwoRegionsAndTheStore: two regions side by side cannot reach each other,
// and both reach the store, which holds the bucket walship.
func TestTwoRegionsAndTheStore(t *testing.T) {
	harness.NeedRoot(t)
	if out, err := harness.RegionScript(t, "store", "down"); err != nil {
		t.Fatalf("store down: %v\n%s", err, out)
	}
	out, err := harness.RegionScript(t, "store", "up")
	if err != nil {
		t.Fatalf("store up: %v\n%s", err, out)
	}
	t.Cleanup(func() { harness.RegionScript(t, "store", "down") })
	for _, want := range []string{"S3_ENDPOINT=http://10.250.0.1:9000", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="} {
		if !strings.Contains(out, want) {
			t.Errorf("store up printed no %s:\n%s", want, out)
		}
	}
	// The bucket, seen from inside the store's namespace with its credentials.
	out, err = harness.RegionScript(t, "store", "exec", "sh", "-c",
		`curl -s -o /dev/null -w "%{http_code}" -I --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$S3_ENDPOINT/walship"`)
	if err != nil || out != "200" {
		t.Errorf("HEAD of the bucket walship: %q, %v", out, err)
	}

	east := harness.StartRegion(t, "east", 1)
	west := harness.StartRegion(t, "west", 1)
	for _, r := range []*harness.Region{east, west} {
		r.Apply(t, echoServer("echo", ""))
		r.Apply(t, clientPod("client", ""))
	}
	for _, r := range []*harness.Region{east, west} {
		waitReady(t, r, "pod/echo")
		waitReady(t, r, "pod/client")
	}
	// No namespace of the regions or the store routes anywhere else.
	nsList, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(nsList), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "wsr-") {
			if out, _ := exec.Command("ip", "-n", f[0], "route", "show", "default").Output(); len(out) > 0 {
				t.Errorf("namespace %s has a default route: %s", f[0], out)
			}
		}
	}
	for _, pair := range [][2]*harness.Region{{east, west}, {west, east}} {
		from, to := pair[0], pair[1]
		code, err := from.Kubectl(t, "exec", "client", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
			"--max-time", "5", "http://10.250.0.1:9000/minio/health/live")
		if err != nil || code != "200" {
			t.Errorf("region %s to the store: %q, %v", from.Name, code, err)
		}
		podIP := to.MustKubectl(t, "get", "pod", "echo", "-o", "jsonpath={.status.podIP}")
		api := to.MustKubectl(t, "get", "endpointslice", "-l", "kubernetes.io/service-name=kubernetes", "-o", "jsonpath={.items[0].endpoints[0].addresses[0]}")
		for _, target := range []string{podIP + " 8080", api + " 6443"} {
			args := append([]string{"exec", "client", "--", "nc", "-z", "-w", "3"}, strings.Fields(target)...)
			if out, err := from.Kubectl(t, args...); err == nil {
				t.Errorf("region %s reached %s in region %s: %q", from.Name, target, to.Name, out)
			}
		}
	}
}
