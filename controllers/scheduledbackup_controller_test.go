package controllers

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	apiv1 "github.com/walship/walship/api/v1"
	"github.com/walship/walship/internal/kubetest"
)

var env *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }

// rig is one test's namespace, cluster, schedule and a reconciler whose
// clock the test moves.
type rig struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	clock  *clocktesting.FakePassiveClock
	events *events.FakeRecorder
	r      *ScheduledBackupReconciler
}

func newRig(t *testing.T) *rig {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	g := &rig{t: t, ctx: ctx, ns: env.Namespace(t), events: events.NewFakeRecorder(100)}
	g.clock = clocktesting.NewFakePassiveClock(time.Now())
	g.r = g.reconciler(env.Client)
	g.cluster("pg")
	return g
}

// reconciler is a fresh reconciler, as after a restart of the operator.
func (g *rig) reconciler(c client.Client) *ScheduledBackupReconciler {
	return &ScheduledBackupReconciler{Client: c, Live: c, Recorder: g.events, Clock: g.clock}
}

func (g *rig) cluster(name string) *apiv1.Cluster {
	c := &apiv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: name},
		Spec:       apiv1.ClusterSpec{Storage: apiv1.StorageConfiguration{Size: "1Gi"}},
	}
	if err := env.Client.Create(g.ctx, c); err != nil {
		g.t.Fatalf("creating cluster %s: %v", name, err)
	}
	return c
}

func (g *rig) schedule(name, schedule string, mutate ...func(*apiv1.ScheduledBackup)) *apiv1.ScheduledBackup {
	sb := &apiv1.ScheduledBackup{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: name},
		Spec:       apiv1.ScheduledBackupSpec{Cluster: apiv1.ClusterReference{Name: "pg"}, Schedule: schedule},
	}
	for _, m := range mutate {
		m(sb)
	}
	if err := env.Client.Create(g.ctx, sb); err != nil {
		g.t.Fatalf("creating ScheduledBackup %s: %v", name, err)
	}
	return sb
}

// reconcile runs one reconcile at the clock's time.
func (g *rig) reconcile(name string) reconcile.Result {
	g.t.Helper()
	res, err := g.r.Reconcile(g.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: g.ns, Name: name}})
	if err != nil {
		g.t.Fatalf("reconcile at %s: %v", g.clock.Now().UTC(), err)
	}
	return res
}

func (g *rig) get(name string) *apiv1.ScheduledBackup {
	g.t.Helper()
	var sb apiv1.ScheduledBackup
	if err := env.Client.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: name}, &sb); err != nil {
		g.t.Fatal(err)
	}
	return &sb
}

// backups are the names of the namespace's Backups, sorted.
func (g *rig) backups() []string {
	g.t.Helper()
	var list apiv1.BackupList
	if err := env.Client.List(g.ctx, &list, client.InNamespace(g.ns)); err != nil {
		g.t.Fatal(err)
	}
	var names []string
	for _, b := range list.Items {
		names = append(names, b.Name)
	}
	slices.Sort(names)
	return names
}

func (g *rig) expectBackups(want ...string) {
	g.t.Helper()
	if got := g.backups(); !slices.Equal(got, want) {
		g.t.Fatalf("at %s: Backups %v, want %v", g.clock.Now().UTC(), got, want)
	}
}

func (g *rig) finish(name string, phase apiv1.BackupPhase) {
	g.t.Helper()
	var b apiv1.Backup
	if err := env.Client.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: name}, &b); err != nil {
		g.t.Fatal(err)
	}
	b.Status.Phase = phase
	if err := env.Client.Status().Update(g.ctx, &b); err != nil {
		g.t.Fatal(err)
	}
}

// event waits for the next event whose text contains all of want.
func (g *rig) event(want ...string) string {
	g.t.Helper()
	for {
		select {
		case e := <-g.events.Events:
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(e, w)
			}
			if ok {
				return e
			}
		default:
			g.t.Fatalf("no event with %q", want)
			return ""
		}
	}
}

// nextAt is the first 03:00 UTC after t.
func nextAt(t time.Time, hour int) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), hour, 0, 0, 0, time.UTC)
	if !d.After(t) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

func TestScheduledBackupRunsOnScheduleWithoutReplayingMissedRuns(t *testing.T) {
	g := newRig(t)
	sb := g.schedule("nightly", "0 3 * * *")
	created := sb.CreationTimestamp.UTC()
	first := nextAt(created, 3)

	// Before the first run: nothing, and the status says when.
	g.clock.SetTime(created.Add(time.Minute))
	res := g.reconcile("nightly")
	g.expectBackups()
	st := g.get("nightly").Status
	if st.NextScheduleTime == nil || !st.NextScheduleTime.Equal(&metav1.Time{Time: first}) || st.LastCheckTime == nil {
		t.Fatalf("status before the first run: %+v", st)
	}
	if want := first.Sub(g.clock.Now()); res.RequeueAfter != want {
		t.Errorf("requeue after %s, want %s", res.RequeueAfter, want)
	}

	// At 03:00: one Backup, named after the run, labelled, with the spec.
	g.clock.SetTime(first.Add(2 * time.Second))
	g.reconcile("nightly")
	name1 := "nightly-" + first.Format("20060102150405")
	g.expectBackups(name1)
	var b apiv1.Backup
	if err := env.Client.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: name1}, &b); err != nil {
		t.Fatal(err)
	}
	if b.Spec.Cluster.Name != "pg" || b.Spec.Method != apiv1.BackupMethodWalship || b.Labels[ClusterLabel] != "pg" || b.Labels[ScheduledBackupLabel] != "nightly" || len(b.OwnerReferences) != 0 {
		t.Errorf("Backup %s: spec %+v labels %v owners %v", name1, b.Spec, b.Labels, b.OwnerReferences)
	}
	st = g.get("nightly").Status
	if !st.LastScheduleTime.Equal(&metav1.Time{Time: first}) || st.LastBackupName != name1 || !st.NextScheduleTime.Equal(&metav1.Time{Time: first.AddDate(0, 0, 1)}) {
		t.Errorf("status after the first run: %+v", st)
	}
	g.event("Normal BackupCreated", name1)

	// Checking again at the same moment creates nothing more.
	g.reconcile("nightly")
	g.expectBackups(name1)

	// The operator is down for three days and a bit: one backup for the
	// newest run, the two runs before it are reported, not replayed.
	g.finish(name1, apiv1.BackupPhaseCompleted)
	later := first.AddDate(0, 0, 3).Add(5 * time.Hour)
	g.clock.SetTime(later)
	g.reconcile("nightly")
	newest := first.AddDate(0, 0, 3)
	name2 := "nightly-" + newest.Format("20060102150405")
	g.expectBackups(name1, name2)
	g.event("Warning MissedRuns", "2 earlier run(s)", "not replayed")
	g.event("Normal BackupCreated", name2)
}

func TestScheduledBackupWaitsWhileTheClusterHasARunningBackup(t *testing.T) {
	g := newRig(t)
	g.cluster("other")
	// A backup started by hand is still running on pg; another cluster's
	// unfinished backup does not matter.
	for _, b := range []struct{ name, cluster string }{{"manual", "pg"}, {"elsewhere", "other"}} {
		if err := env.Client.Create(g.ctx, &apiv1.Backup{
			ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: b.name},
			Spec:       apiv1.BackupSpec{Cluster: apiv1.ClusterReference{Name: b.cluster}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	g.finish("manual", apiv1.BackupPhaseRunning)
	sb := g.schedule("hourly", "0 * * * *")
	run := sb.CreationTimestamp.UTC().Truncate(time.Hour).Add(time.Hour)
	g.clock.SetTime(run.Add(time.Second))
	res := g.reconcile("hourly")
	g.expectBackups("elsewhere", "manual")
	g.event("Normal Waiting", "Backup manual of cluster pg has not finished")
	if res.RequeueAfter != DefaultBusyWait {
		t.Errorf("requeue after %s while busy, want %s", res.RequeueAfter, DefaultBusyWait)
	}
	if st := g.get("hourly").Status; st.LastScheduleTime != nil {
		t.Errorf("the waiting run is recorded as taken: %+v", st)
	}

	// Once it has finished (here: failed), the waiting run is taken.
	g.finish("manual", apiv1.BackupPhaseFailed)
	g.clock.SetTime(run.Add(40 * time.Second))
	g.reconcile("hourly")
	g.expectBackups("elsewhere", "hourly-"+run.Format("20060102150405"), "manual")
}

func TestScheduledBackupSuspendAndImmediate(t *testing.T) {
	g := newRig(t)
	sb := g.schedule("weekly", "@weekly", func(sb *apiv1.ScheduledBackup) {
		sb.Spec.Suspend = ptr.To(true)
		sb.Spec.Immediate = ptr.To(true)
		sb.Spec.BackupOwnerReference = apiv1.BackupOwnerSelf
	})
	created := sb.CreationTimestamp.UTC()

	// Suspended: not even the immediate backup, and no next run.
	g.clock.SetTime(created.AddDate(0, 0, 8))
	if res := g.reconcile("weekly"); res.RequeueAfter != 0 {
		t.Errorf("a suspended schedule requeues after %s", res.RequeueAfter)
	}
	g.expectBackups()
	if st := g.get("weekly").Status; st.NextScheduleTime != nil {
		t.Errorf("suspended, next run %s", st.NextScheduleTime)
	}

	// Resumed: the immediate backup is taken at once, then the schedule's.
	sb = g.get("weekly")
	sb.Spec.Suspend = ptr.To(false)
	if err := env.Client.Update(g.ctx, sb); err != nil {
		t.Fatal(err)
	}
	g.clock.SetTime(created.Add(time.Minute))
	g.reconcile("weekly")
	immediate := "weekly-" + created.Format("20060102150405")
	g.expectBackups(immediate)
	var b apiv1.Backup
	if err := env.Client.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: immediate}, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.OwnerReferences) != 1 || b.OwnerReferences[0].Kind != "ScheduledBackup" || b.OwnerReferences[0].UID != sb.UID {
		t.Errorf("backupOwnerReference self: owners %+v", b.OwnerReferences)
	}
	g.finish(immediate, apiv1.BackupPhaseCompleted)
	g.reconcile("weekly")
	g.expectBackups(immediate)
}

func TestScheduledBackupOwnedByCluster(t *testing.T) {
	g := newRig(t)
	g.schedule("owned", "@daily", func(sb *apiv1.ScheduledBackup) {
		sb.Spec.Immediate = ptr.To(true)
		sb.Spec.BackupOwnerReference = apiv1.BackupOwnerCluster
		sb.Spec.Target = apiv1.BackupTargetPrimary
	})
	g.reconcile("owned")
	names := g.backups()
	if len(names) != 1 {
		t.Fatalf("Backups %v", names)
	}
	var b apiv1.Backup
	if err := env.Client.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: names[0]}, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.OwnerReferences) != 1 || b.OwnerReferences[0].Kind != "Cluster" || b.OwnerReferences[0].Name != "pg" || b.Spec.Target != apiv1.BackupTargetPrimary {
		t.Errorf("owners %+v, target %q", b.OwnerReferences, b.Spec.Target)
	}
}

func TestScheduledBackupWithoutClusterWaits(t *testing.T) {
	g := newRig(t)
	g.schedule("orphan", "@hourly", func(sb *apiv1.ScheduledBackup) {
		sb.Spec.Cluster.Name = "missing"
		sb.Spec.Immediate = ptr.To(true)
	})
	g.reconcile("orphan")
	g.expectBackups()
	g.event("Normal Waiting", `no Cluster "missing"`)
}

// A crash between creating a run's Backup and recording it: the restarted
// controller finds the Backup by its name and creates no second one.
func TestScheduledBackupNoDuplicateAfterCrash(t *testing.T) {
	g := newRig(t)
	sb := g.schedule("crashy", "*/5 * * * *")
	run := sb.CreationTimestamp.UTC().Truncate(5 * time.Minute).Add(5 * time.Minute)
	g.clock.SetTime(run)

	base, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	crashing := interceptor.NewClient(base, interceptor.Funcs{
		SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
			return errors.New("operator killed")
		},
	})
	if _, err := g.reconciler(crashing).Reconcile(g.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: g.ns, Name: "crashy"}}); err == nil {
		t.Fatal("the status update failed but Reconcile reported success")
	}
	name := "crashy-" + run.Format("20060102150405")
	g.expectBackups(name)

	// Restarted, a little later, while that Backup runs.
	g.r = g.reconciler(env.Client)
	g.clock.SetTime(run.Add(20 * time.Second))
	g.reconcile("crashy")
	g.expectBackups(name)
	if st := g.get("crashy").Status; st.LastBackupName != name || !st.LastScheduleTime.Equal(&metav1.Time{Time: run}) {
		t.Errorf("status after the restart: %+v", st)
	}
}

// What the admission rules cannot see (a range written backwards, a date
// that never comes) the controller refuses with an event.
func TestScheduledBackupInvalidScheduleEvent(t *testing.T) {
	g := newRig(t)
	g.schedule("feb30", "0 3 30 2 *")
	if res := g.reconcile("feb30"); res.RequeueAfter != 0 {
		t.Errorf("requeues after %s", res.RequeueAfter)
	}
	g.expectBackups()
	g.event("Warning InvalidSchedule", "never runs")
	g.schedule("backwards", "50-10 3 * * *")
	g.reconcile("backwards")
	g.event("Warning InvalidSchedule", "beyond end of range")
}
