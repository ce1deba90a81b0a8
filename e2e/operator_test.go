package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/walship/walship/api/v1"
	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/kubetest"
)

// `walship operator` against a real kube-apiserver: it serves health and
// metrics, takes the immediate backup of a ScheduledBackup, explains it in an
// event, and after a restart does not take it again.
func TestOperatorScheduledBackups(t *testing.T) {
	walship := harness.WalshipK8s(t)
	kube, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kubeconfig := writeKubeconfig(t, kube.Config)
	ns := kube.Namespace(t)
	c := kube.Client

	cluster := &apiv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"},
		Spec: apiv1.ClusterSpec{Storage: apiv1.StorageConfiguration{Size: "1Gi"}}}
	if err := c.Create(ctx, cluster); err != nil {
		t.Fatal(err)
	}
	sb := &apiv1.ScheduledBackup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"},
		Spec: apiv1.ScheduledBackupSpec{Cluster: apiv1.ClusterReference{Name: "pg"}, Schedule: "0 3 * * *", Immediate: ptr.To(true)}}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	immediate := sb.BackupName(sb.CreationTimestamp.Time)

	op := startOperator(t, walship, kubeconfig, ns)
	op.waitHealthy(t)
	waitFor(t, "the immediate Backup", func() bool {
		var b apiv1.Backup
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: immediate}, &b) == nil
	})
	waitFor(t, "a BackupCreated event", func() bool {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Reason == "BackupCreated" && e.Regarding.Name == "nightly" && strings.Contains(e.Note, immediate) {
				return true
			}
		}
		return false
	})
	if m := op.get(t, op.metrics, "/metrics"); !strings.Contains(m, `controller_runtime_reconcile_total{controller="scheduledbackup"`) {
		t.Errorf("the metrics do not count the scheduledbackup controller's reconciles:\n%.2000s", m)
	}
	op.stop(t)

	// Restarted: it checks the schedule again and creates nothing new.
	restart := time.Now().Truncate(time.Second)
	op = startOperator(t, walship, kubeconfig, ns)
	op.waitHealthy(t)
	waitFor(t, "a check after the restart", func() bool {
		var got apiv1.ScheduledBackup
		if err := c.Get(ctx, client.ObjectKeyFromObject(sb), &got); err != nil {
			return false
		}
		return got.Status.LastCheckTime != nil && !got.Status.LastCheckTime.Time.Before(restart)
	})
	var list apiv1.BackupList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != immediate {
		var names []string
		for _, b := range list.Items {
			names = append(names, b.Name)
		}
		t.Errorf("after the restart: Backups %v, want only %s", names, immediate)
	}
	op.stop(t)
}

// Without walship-k8s next to it or on PATH, `walship operator` says what is missing.
func TestOperatorNeedsItsBinary(t *testing.T) {
	alone := filepath.Join(t.TempDir(), "walship")
	data, err := os.ReadFile(harness.Walship(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(alone, "operator").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "walship-k8s is not installed next to walship or on PATH") {
		t.Errorf("walship operator without walship-k8s: %v\n%s", err, out)
	}
}

type operator struct {
	cmd             *exec.Cmd
	out             *bytes.Buffer
	health, metrics string
	exited          chan error
}

func startOperator(t *testing.T, walship, kubeconfig, ns string) *operator {
	t.Helper()
	op := &operator{out: &bytes.Buffer{}, health: localAddr(t), metrics: localAddr(t), exited: make(chan error, 1)}
	op.cmd = exec.Command(walship, "operator", "--kubeconfig", kubeconfig, "--leader-elect",
		"--health-probe-bind-address", op.health, "--metrics-bind-address", op.metrics)
	// Out of a pod, leader election needs to be told its namespace.
	op.cmd.Env = append(os.Environ(), "WALSHIP_OPERATOR_NAMESPACE="+ns)
	op.cmd.Stdout, op.cmd.Stderr = op.out, op.out
	if err := op.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { op.exited <- op.cmd.Wait() }()
	t.Cleanup(func() {
		if op.cmd.ProcessState == nil {
			_ = op.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("operator output:\n%s", op.out.String())
		}
	})
	return op
}

func (op *operator) waitHealthy(t *testing.T) {
	t.Helper()
	waitFor(t, "/healthz and /readyz", func() bool {
		select {
		case err := <-op.exited:
			t.Fatalf("the operator exited: %v\n%s", err, op.out.String())
		default:
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get("http://" + op.health + path)
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
		}
		return true
	})
}

func (op *operator) get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// stop sends SIGTERM, as Kubernetes does, and expects a clean exit.
func (op *operator) stop(t *testing.T) {
	t.Helper()
	_ = op.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-op.exited:
		if err != nil {
			t.Errorf("the operator exited with %v after SIGTERM\n%s", err, op.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the operator did not stop within 30 s of SIGTERM\n%s", op.out.String())
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func localAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)) }

// writeKubeconfig writes a kubeconfig file for cfg, as kubectl would read it.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(fmt.Errorf("writing %s: %w", path, err))
	}
	return path
}
