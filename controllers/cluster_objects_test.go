package controllers

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	apiv1 "github.com/walship/walship/api/v1"
)

func objectsCluster() *apiv1.Cluster {
	return &apiv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pg", UID: types.UID("uid-1")},
		Spec: apiv1.ClusterSpec{
			Instances: 3,
			Storage:   apiv1.StorageConfiguration{Size: "10Gi", StorageClass: ptr.To("fast")},
			PostgresQL: apiv1.PostgresConfiguration{
				Parameters: map[string]string{"timezone": "Asia/Seoul", "max_worker_processes": "40", "shared_buffers": "256MB"},
				PgHBA:      []string{"hostssl all all 10.0.0.0/8 scram-sha-256", `host app app 0.0.0.0/0 md5`},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
			},
		},
	}
}

func checkOwner(t *testing.T, what string, o metav1.Object, c *apiv1.Cluster) {
	t.Helper()
	refs := o.GetOwnerReferences()
	if len(refs) != 1 || !metav1.IsControlledBy(o, c) || refs[0].Kind != "Cluster" ||
		refs[0].APIVersion != apiv1.GroupVersion.String() || refs[0].Name != c.Name {
		t.Errorf("%s: owner references %+v, want the Cluster as controller", what, refs)
	}
}

func TestInstanceName(t *testing.T) {
	if got := InstanceName("mycluster", 1); got != "mycluster-1" {
		t.Errorf("InstanceName = %q", got)
	}
	if got := InstanceName("a-b", 12); got != "a-b-12" {
		t.Errorf("InstanceName = %q", got)
	}
}

func TestServicesSelectors(t *testing.T) {
	c := objectsCluster()
	svcs := Services(c)
	if len(svcs) != 3 {
		t.Fatalf("%d Services, want 3", len(svcs))
	}
	pod := func(cluster, role string) labels.Set {
		return labels.Set{ClusterLabel: cluster, InstanceNameLabel: cluster + "-1", InstanceRoleLabel: role}
	}
	// Which pods each Service selects.
	want := []struct {
		name                           string
		primary, replica, otherCluster bool
	}{
		{"pg-rw", true, false, false},
		{"pg-ro", false, true, false},
		{"pg-r", true, true, false},
	}
	for i, w := range want {
		s := svcs[i]
		if s.Name != w.name || s.Namespace != "ns" {
			t.Errorf("Service %d: %s/%s, want ns/%s", i, s.Namespace, s.Name, w.name)
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		if got := sel.Matches(pod("pg", RolePrimary)); got != w.primary {
			t.Errorf("%s selects the primary: %v, want %v", s.Name, got, w.primary)
		}
		if got := sel.Matches(pod("pg", RoleReplica)); got != w.replica {
			t.Errorf("%s selects a standby: %v, want %v", s.Name, got, w.replica)
		}
		if sel.Matches(pod("other", RolePrimary)) || sel.Matches(pod("other", RoleReplica)) {
			t.Errorf("%s selects another cluster's pods", s.Name)
		}
		if s.Spec.Type != corev1.ServiceTypeClusterIP || s.Spec.PublishNotReadyAddresses {
			t.Errorf("%s: type %q publishNotReady %v", s.Name, s.Spec.Type, s.Spec.PublishNotReadyAddresses)
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 5432 || s.Spec.Ports[0].Name != "postgres" {
			t.Errorf("%s: ports %+v", s.Name, s.Spec.Ports)
		}
		if s.Labels[ClusterLabel] != "pg" {
			t.Errorf("%s: labels %v", s.Name, s.Labels)
		}
		checkOwner(t, s.Name, s, c)
	}
	if RWServiceName(c) != "pg-rw" || ROServiceName(c) != "pg-ro" || RServiceName(c) != "pg-r" {
		t.Error("Service name functions disagree")
	}
}

func TestPVC(t *testing.T) {
	c := objectsCluster()
	p, err := PVC(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "pg-2" || p.Namespace != "ns" {
		t.Errorf("PVC %s/%s", p.Namespace, p.Name)
	}
	if got := p.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("10Gi")) != 0 {
		t.Errorf("size %s, want 10Gi", got.String())
	}
	if p.Spec.StorageClassName == nil || *p.Spec.StorageClassName != "fast" {
		t.Errorf("storage class %v, want fast", p.Spec.StorageClassName)
	}
	if p.Spec.StorageClassName == c.Spec.Storage.StorageClass {
		t.Error("PVC shares the Cluster's storageClass pointer")
	}
	if !reflect.DeepEqual(p.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("access modes %v", p.Spec.AccessModes)
	}
	if p.Labels[ClusterLabel] != "pg" || p.Labels[InstanceNameLabel] != "pg-2" {
		t.Errorf("labels %v", p.Labels)
	}
	checkOwner(t, "PVC", p, c)

	c.Spec.Storage.StorageClass = nil
	if p, _ := PVC(c, 1); p.Spec.StorageClassName != nil {
		t.Errorf("no storageClass in spec: PVC has %q, want nil (the default class)", *p.Spec.StorageClassName)
	}
	c.Spec.Storage.Size = "lots"
	if _, err := PVC(c, 1); err == nil {
		t.Error("size lots: no error")
	}
}

func envMap(t *testing.T, p *corev1.Pod) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestPod(t *testing.T) {
	c := objectsCluster()
	p, err := Pod(c, 3, RoleReplica, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "pg-3" || p.Namespace != "ns" || p.Spec.Hostname != "pg-3" {
		t.Errorf("pod %s/%s hostname %q", p.Namespace, p.Name, p.Spec.Hostname)
	}
	if want := (map[string]string{ClusterLabel: "pg", InstanceNameLabel: "pg-3", InstanceRoleLabel: RoleReplica}); !reflect.DeepEqual(p.Labels, want) {
		t.Errorf("labels %v, want %v", p.Labels, want)
	}
	checkOwner(t, "Pod", p, c)
	if len(p.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(p.Spec.Containers))
	}
	ct := p.Spec.Containers[0]
	if ct.Name != "postgres" || ct.Image != DefaultImage || ct.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("container %q image %q pull %q", ct.Name, ct.Image, ct.ImagePullPolicy)
	}
	if !reflect.DeepEqual(ct.Command, []string{"walship", "instance", "run"}) {
		t.Errorf("command %v", ct.Command)
	}
	if len(ct.Ports) != 1 || ct.Ports[0].ContainerPort != 5432 || ct.Ports[0].Name != "postgres" {
		t.Errorf("ports %+v", ct.Ports)
	}
	if !reflect.DeepEqual(ct.Resources, c.Spec.Resources) {
		t.Errorf("resources %+v", ct.Resources)
	}
	if ct.ReadinessProbe == nil || ct.ReadinessProbe.Exec == nil ||
		!reflect.DeepEqual(ct.ReadinessProbe.Exec.Command, []string{"pg_isready", "-q", "-h", "/run/postgresql"}) {
		t.Errorf("readiness probe %+v", ct.ReadinessProbe)
	}
	if len(ct.VolumeMounts) != 1 || ct.VolumeMounts[0].MountPath != "/var/lib/postgresql/data" ||
		len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].Name != ct.VolumeMounts[0].Name ||
		p.Spec.Volumes[0].PersistentVolumeClaim == nil || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "pg-3" {
		t.Errorf("volumes %+v mounts %+v", p.Spec.Volumes, ct.VolumeMounts)
	}
	sc := p.Spec.SecurityContext
	if sc == nil || *sc.RunAsUser != 26 || *sc.RunAsGroup != 26 || *sc.FSGroup != 26 || !*sc.RunAsNonRoot {
		t.Errorf("security context %+v", sc)
	}
	if p.Spec.TerminationGracePeriodSeconds == nil || *p.Spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("grace period %v", p.Spec.TerminationGracePeriodSeconds)
	}

	// Environment: sorted, and the JSON round-trips to the spec.
	for i := 1; i < len(ct.Env); i++ {
		if ct.Env[i-1].Name >= ct.Env[i].Name {
			t.Errorf("env not sorted: %s before %s", ct.Env[i-1].Name, ct.Env[i].Name)
		}
	}
	env := envMap(t, p)
	if env["PGDATA"] != "/var/lib/postgresql/data/pgdata" || env["WALSHIP_CLUSTER"] != "pg" || env["WALSHIP_INSTANCE"] != "pg-3" {
		t.Errorf("env %v", env)
	}
	var params map[string]string
	if err := json.Unmarshal([]byte(env["WALSHIP_PG_PARAMETERS"]), &params); err != nil || !reflect.DeepEqual(params, c.Spec.PostgresQL.Parameters) {
		t.Errorf("WALSHIP_PG_PARAMETERS %q: %v, %v", env["WALSHIP_PG_PARAMETERS"], params, err)
	}
	var hba []string
	if err := json.Unmarshal([]byte(env["WALSHIP_PG_HBA"]), &hba); err != nil || !reflect.DeepEqual(hba, c.Spec.PostgresQL.PgHBA) {
		t.Errorf("WALSHIP_PG_HBA %q: %v, %v", env["WALSHIP_PG_HBA"], hba, err)
	}

	// Anti-affinity: preferred, weight 100, per node, to this cluster's pods.
	a := p.Spec.Affinity
	if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Fatalf("affinity %+v", a)
	}
	w := a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0]
	if w.Weight != 100 || w.PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("anti-affinity term %+v", w)
	}
	sel, err := metav1.LabelSelectorAsSelector(w.PodAffinityTerm.LabelSelector)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Pod(c, 1, RolePrimary, "")
	if !sel.Matches(labels.Set(other.Labels)) || sel.Matches(labels.Set{ClusterLabel: "elsewhere"}) {
		t.Errorf("anti-affinity selector %v", sel)
	}

	// Image: the argument, then spec.imageName, then DefaultImage.
	c.Spec.ImageName = "example.com/pg:16"
	if p, _ := Pod(c, 1, RolePrimary, ""); p.Spec.Containers[0].Image != "example.com/pg:16" || p.Labels[InstanceRoleLabel] != RolePrimary {
		t.Errorf("image %q role %q", p.Spec.Containers[0].Image, p.Labels[InstanceRoleLabel])
	}
	if p, _ := Pod(c, 1, RolePrimary, "x/y:z"); p.Spec.Containers[0].Image != "x/y:z" {
		t.Errorf("image %q", p.Spec.Containers[0].Image)
	}
	if _, err := Pod(c, 1, "leader", ""); err == nil {
		t.Error("role leader: no error")
	}

	// Empty parameters and pg_hba are {} and [].
	c.Spec.PostgresQL = apiv1.PostgresConfiguration{}
	p, _ = Pod(c, 1, RolePrimary, "")
	if env := envMap(t, p); env["WALSHIP_PG_PARAMETERS"] != "{}" || env["WALSHIP_PG_HBA"] != "[]" {
		t.Errorf("empty config: %q %q", env["WALSHIP_PG_PARAMETERS"], env["WALSHIP_PG_HBA"])
	}
}

// TestBuildersDeterministic builds everything twice, from maps with many
// keys (whose iteration order varies), and wants equal objects and JSON.
func TestBuildersDeterministic(t *testing.T) {
	c := objectsCluster()
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "work_mem", "zz"} {
		c.Spec.PostgresQL.Parameters[k] = k + "-value"
	}
	build := func() []byte {
		pvc, err := PVC(c, 1)
		if err != nil {
			t.Fatal(err)
		}
		pod, err := Pod(c, 1, RolePrimary, "")
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal([]any{Services(c), pvc, pod})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := build()
	for range 20 {
		if got := build(); string(got) != string(first) {
			t.Fatalf("builders differ between calls:\n%s\n%s", first, got)
		}
	}
}

// TestObjectsAcceptedByAPIServer creates a Cluster and then its built
// Services, PVC and Pods through the API server, which validates them.
func TestObjectsAcceptedByAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := env.Namespace(t)
	c := &apiv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mycluster"},
		Spec: apiv1.ClusterSpec{
			Instances: 2,
			Storage:   apiv1.StorageConfiguration{Size: "1Gi", StorageClass: ptr.To("standard")},
			PostgresQL: apiv1.PostgresConfiguration{
				Parameters: map[string]string{"timezone": "Asia/Seoul", "max_worker_processes": "40"},
				PgHBA:      []string{"host all all 10.0.0.0/8 scram-sha-256"},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			},
		},
	}
	if err := env.Client.Create(ctx, c); err != nil {
		t.Fatalf("creating the Cluster: %v", err)
	}
	for _, s := range Services(c) {
		if err := env.Client.Create(ctx, s); err != nil {
			t.Errorf("creating Service %s: %v", s.Name, err)
		}
	}
	for serial, role := range map[int]string{1: RolePrimary, 2: RoleReplica} {
		pvc, err := PVC(c, serial)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, pvc); err != nil {
			t.Errorf("creating PVC %s: %v", pvc.Name, err)
		}
		pod, err := Pod(c, serial, role, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, pod); err != nil {
			t.Errorf("creating Pod %s: %v", pod.Name, err)
		}
	}
	// Stored as built, owned by the Cluster.
	var got corev1.Pod
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mycluster-2"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Labels[InstanceRoleLabel] != RoleReplica || !metav1.IsControlledBy(&got, c) {
		t.Errorf("stored Pod: labels %v owners %+v", got.Labels, got.OwnerReferences)
	}
	var svc corev1.Service
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mycluster-rw"}, &svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.Selector[InstanceRoleLabel] != RolePrimary {
		t.Errorf("stored Service: clusterIP %q selector %v", svc.Spec.ClusterIP, svc.Spec.Selector)
	}
}
