// Package region tests the test bed of the Kubernetes half: regions of real
// Kubernetes parts started by scripts/region.sh (issue 23). Each test asserts
// what a pod, a Service or a volume does on an ordinary cluster.
package region

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
)

// waitFor polls f every half second until it returns true or the timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func waitReady(t *testing.T, r *harness.Region, what string) {
	t.Helper()
	if _, err := r.Kubectl(t, "wait", "--for=condition=Ready", what, "--timeout=120s"); err != nil {
		t.Fatal(err)
	}
}

// onNode is the spec line that puts a pod on node, or nothing.
func onNode(node string) string {
	if node == "" {
		return ""
	}
	return "\n  nodeName: " + node
}

// greeting connects from pod client to host:80 and returns what the echo
// server said. Services are programmed on each node a moment after their pod
// is Ready, and the echo server takes one connection at a time (its readiness
// probe is one), so a refused connection is tried again for a few seconds.
func greeting(t *testing.T, r *harness.Region, client, host string) (string, error) {
	t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; {
		out, err = r.Kubectl(t, "exec", client, "--", "nc", "-w", "5", host, "80")
		if (err == nil && strings.TrimSpace(out) != "") || time.Now().After(deadline) {
			return strings.TrimSpace(out), err
		}
		time.Sleep(time.Second)
	}
}

// clientPod is a pod of the walkthrough's client image that sleeps.
func clientPod(name, node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {app: %s}}
spec:%s
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/postgres:15
    imagePullPolicy: IfNotPresent
    command: [sleep, infinity]
`, name, name, onNode(node))
}

// echoServer is a pod answering TCP connections on 8080 with its own name,
// behind a Service of the same name on port 80.
func echoServer(name, node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s, labels: {app: %[1]s}}
spec:%[2]s
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/postgres:15
    imagePullPolicy: IfNotPresent
    command: [bash, -c, 'while true; do echo "hello from $HOSTNAME" | nc -N -l 8080; done']
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: 8080}]
`, name, onNode(node))
}

// TestOneNodeRegion: a one-node region is an ordinary cluster: a real kubelet
// on containerd, probes, Services by address and by DNS name, logs and exec,
// the in-cluster API, graceful deletion, volumes that come and go with their
// claims, and PostgreSQL from the walship image keeping its data on one.
func TestOneNodeRegion(t *testing.T) {
	r := harness.StartRegion(t, "one", 1)

	t.Run("RealNode", func(t *testing.T) {
		out := r.MustKubectl(t, "get", "node", "one-node1", "-o",
			`jsonpath={.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion} {.status.conditions[?(@.type=="Ready")].status}`)
		if !strings.HasPrefix(out, "v1.35.") || !strings.Contains(out, " containerd://") || !strings.HasSuffix(out, " True") {
			t.Fatalf("node one-node1: %q, want a v1.35 kubelet on containerd, Ready", out)
		}
	})

	// region.sh up installs the operator from config/ (kubectl apply -k), as
	// a user would.
	t.Run("OperatorInstalled", func(t *testing.T) {
		out := r.MustKubectl(t, "-n", "walship-system", "get", "deploy", "walship-operator", "-o",
			"jsonpath={.status.readyReplicas} {.spec.template.spec.containers[0].image}")
		if out != "2 ghcr.io/walship/walship:dev" {
			t.Fatalf("the operator Deployment: %q, want 2 ready replicas of ghcr.io/walship/walship:dev", out)
		}
		for _, crd := range []string{"clusters.postgresql.walship.io", "backups.postgresql.walship.io", "scheduledbackups.postgresql.walship.io"} {
			r.MustKubectl(t, "get", "crd", crd)
		}
	})

	t.Run("ServiceByAddressAndName", func(t *testing.T) {
		r.Apply(t, echoServer("echo", ""))
		r.Apply(t, clientPod("client", ""))
		waitReady(t, r, "pod/echo")
		waitReady(t, r, "pod/client")
		ip := r.MustKubectl(t, "get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}")
		for _, host := range []string{ip, "echo", "echo.default.svc", "echo.default.svc.cluster.local"} {
			out, err := greeting(t, r, "client", host)
			if err != nil || out != "hello from echo" {
				t.Errorf("client to %s:80: %q, %v; want the echo pod's greeting", host, out, err)
			}
		}
	})

	t.Run("LogsAndExec", func(t *testing.T) {
		r.Apply(t, `apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/postgres:15
    imagePullPolicy: IfNotPresent
    command: [bash, -c, 'echo "first line from talker"; sleep infinity']
`)
		waitReady(t, r, "pod/talker")
		waitFor(t, 30*time.Second, "talker's log", func() bool {
			out, _ := r.Kubectl(t, "logs", "talker")
			return strings.Contains(out, "first line from talker")
		})
		out := r.MustKubectl(t, "exec", "talker", "--", "cat", "/etc/hostname")
		if strings.TrimSpace(out) != "talker" {
			t.Fatalf("exec cat /etc/hostname: %q, want talker", out)
		}
	})

	t.Run("InClusterAPI", func(t *testing.T) {
		r.Apply(t, `apiVersion: v1
kind: ServiceAccount
metadata: {name: lister}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-lister}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: lister}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-lister}
subjects: [{kind: ServiceAccount, name: lister, namespace: default}]
---
apiVersion: v1
kind: Pod
metadata: {name: lister}
spec:
  serviceAccountName: lister
  restartPolicy: Never
  containers:
  - name: c
    image: docker.io/library/postgres:15
    imagePullPolicy: IfNotPresent
    command: [bash, -c, 'sa=/var/run/secrets/kubernetes.io/serviceaccount; curl -sS --fail --cacert $sa/ca.crt -H "Authorization: Bearer $(cat $sa/token)" https://kubernetes.default.svc/api/v1/namespaces/default/pods']
`)
		waitFor(t, 90*time.Second, "pod lister to finish", func() bool {
			out, _ := r.Kubectl(t, "get", "pod", "lister", "-o", "jsonpath={.status.phase}")
			return out == "Succeeded" || out == "Failed"
		})
		out, _ := r.Kubectl(t, "logs", "lister")
		if !strings.Contains(out, `"kind": "PodList"`) || !strings.Contains(out, `"name": "lister"`) {
			t.Fatalf("the pod's list of pods through the in-cluster API:\n%s", out)
		}
	})

	t.Run("DeleteSendsSIGTERMAndFreesTheIP", func(t *testing.T) {
		r.Apply(t, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: marks}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 10Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: c
    image: docker.io/library/postgres:15
    imagePullPolicy: IfNotPresent
    command: [bash, -c, 'trap "echo got SIGTERM > /marks/term; exit 0" TERM; touch /marks/started; while true; do sleep 0.2; done']
    volumeMounts: [{name: marks, mountPath: /marks}]
  volumes: [{name: marks, persistentVolumeClaim: {claimName: marks}}]
`)
		waitReady(t, r, "pod/graceful")
		ip := r.MustKubectl(t, "get", "pod", "graceful", "-o", "jsonpath={.status.podIP}")
		lease := filepath.Join(r.Dir(), "nodes/n1/cni-state/networks/region", ip)
		if _, err := os.Stat(lease); err != nil {
			t.Fatalf("the pod's address %s has no lease on the node: %v", ip, err)
		}
		start := time.Now()
		r.MustKubectl(t, "delete", "pod", "graceful", "--wait=true")
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("deleting a pod that exits on SIGTERM took %s: it was not sent SIGTERM", took)
		}
		vol := r.MustKubectl(t, "get", "pv", r.MustKubectl(t, "get", "pvc", "marks", "-o", "jsonpath={.spec.volumeName}"),
			"-o", "jsonpath={.spec.hostPath.path}")
		b, err := os.ReadFile(filepath.Join(r.Dir(), "nodes/n1/volumes", filepath.Base(vol), "term"))
		if err != nil || strings.TrimSpace(string(b)) != "got SIGTERM" {
			t.Errorf("the pod's mark of SIGTERM: %q, %v", b, err)
		}
		waitFor(t, 10*time.Second, "the address "+ip+" released", func() bool {
			_, err := os.Stat(lease)
			return os.IsNotExist(err)
		})
	})

	t.Run("VolumeGoesWithItsClaim", func(t *testing.T) {
		pv := r.MustKubectl(t, "get", "pvc", "marks", "-o", "jsonpath={.spec.volumeName}")
		path := r.MustKubectl(t, "get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}")
		folder := filepath.Join(r.Dir(), "nodes/n1/volumes", filepath.Base(path))
		if _, err := os.Stat(folder); err != nil {
			t.Fatalf("the volume's folder: %v", err)
		}
		affinity := r.MustKubectl(t, "get", "pv", pv, "-o", "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}")
		if affinity != "one-node1" {
			t.Errorf("the volume is bound to node %q, want one-node1", affinity)
		}
		r.MustKubectl(t, "delete", "pvc", "marks", "--wait=true")
		waitFor(t, 60*time.Second, "the volume's folder removed with its claim", func() bool {
			_, err := os.Stat(folder)
			return os.IsNotExist(err)
		})
	})

	t.Run("PostgreSQLKeepsItsDataAcrossARestart", func(t *testing.T) {
		pod := `apiVersion: v1
kind: Pod
metadata: {name: pg}
spec:
  terminationGracePeriodSeconds: 30
  securityContext: {runAsUser: 26, runAsGroup: 26, fsGroup: 26}
  containers:
  - name: postgres
    image: ghcr.io/walship/walship:dev
    imagePullPolicy: IfNotPresent
    command: [bash, -c, 'test -s "$PGDATA/PG_VERSION" || initdb --auth=trust -D "$PGDATA" >/dev/null; exec postgres -D "$PGDATA"']
    env: [{name: PGDATA, value: /var/lib/postgresql/data/pgdata}]
    readinessProbe: {exec: {command: [pg_isready, -q]}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: pgdata}}]
`
		r.Apply(t, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pgdata}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
`+pod)
		waitReady(t, r, "pod/pg")
		for _, c := range [][]string{
			{"id", "-un"}, {"postgres", "--version"}, {"walship", "--version"},
		} {
			out, err := r.Kubectl(t, append([]string{"exec", "pg", "--"}, c...)...)
			t.Logf("image: %s: %s", strings.Join(c, " "), strings.TrimSpace(out))
			switch {
			case err != nil:
				t.Errorf("%s in the walship image: %v", c[0], err)
			case c[0] == "id" && strings.TrimSpace(out) != "postgres":
				t.Errorf("uid 26 in the walship image is %q, want postgres", out)
			case c[0] == "postgres" && !strings.Contains(out, "(PostgreSQL) 15."):
				t.Errorf("postgres --version: %q, want PostgreSQL 15", out)
			case c[0] == "walship" && !strings.HasPrefix(out, "walship"):
				t.Errorf("walship --version: %q", out)
			}
		}
		r.MustKubectl(t, "exec", "pg", "--", "psql", "-v", "ON_ERROR_STOP=1", "-c",
			"create table kept as select g from generate_series(1, 1234) g")
		r.MustKubectl(t, "delete", "pod", "pg", "--wait=true")
		r.Apply(t, pod)
		waitReady(t, r, "pod/pg")
		out := r.MustKubectl(t, "exec", "pg", "--", "psql", "-Atc", "select count(*) from kept")
		if strings.TrimSpace(out) != "1234" {
			t.Fatalf("rows after the pod restarted: %q, want 1234", out)
		}
	})
}
