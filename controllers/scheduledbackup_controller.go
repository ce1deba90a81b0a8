package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	apiv1 "github.com/walship/walship/api/v1"
	"github.com/walship/walship/scheduler"
)

// Labels put on the Backups a schedule creates.
const (
	ClusterLabel         = "postgresql.walship.io/cluster"
	ScheduledBackupLabel = "postgresql.walship.io/scheduled-backup"
)

// DefaultBusyWait is how often a due run whose cluster is busy with another
// backup checks again (a finished Backup also wakes it).
const DefaultBusyWait = 30 * time.Second

// ScheduledBackupReconciler creates a ScheduledBackup's Backups when due.
//
// A run's Backup is named after the schedule and the run's time, so a retry
// (after a crash, a conflict, a restart) finds it instead of creating a
// second. After downtime, only the newest missed run is taken. A run waits
// while any Backup of its cluster is still pending or running.
type ScheduledBackupReconciler struct {
	Client client.Client
	// Live reads Backups from the API server rather than from the cache, so
	// that a Backup created a moment ago counts as running.
	Live     client.Reader
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	BusyWait time.Duration
}

// +kubebuilder:rbac:groups=postgresql.walship.io,resources=scheduledbackups,verbs=get;list;watch
// +kubebuilder:rbac:groups=postgresql.walship.io,resources=scheduledbackups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=postgresql.walship.io,resources=backups,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=postgresql.walship.io,resources=clusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile looks at one ScheduledBackup and creates its due Backup.
func (r *ScheduledBackupReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var sb apiv1.ScheduledBackup
	if err := r.Client.Get(ctx, req.NamespacedName, &sb); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !sb.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	now := r.Clock.Now().UTC()
	st := sb.Status.DeepCopy()
	st.LastCheckTime = ptime(now)

	sched, err := scheduler.ParseSchedule(sb.Spec.Schedule)
	if err != nil {
		// Admission catches malformed fields; this is what a pattern cannot
		// see. Nothing to retry until the spec changes.
		r.event(&sb, corev1.EventTypeWarning, "InvalidSchedule", "%v", err)
		st.NextScheduleTime = nil
		return reconcile.Result{}, r.patchStatus(ctx, &sb, st)
	}
	if sb.IsSuspended() {
		st.NextScheduleTime = nil
		return reconcile.Result{}, r.patchStatus(ctx, &sb, st)
	}

	d := due(&sb, sched, now)
	run, next := d.At, d.Next
	if run.IsZero() {
		st.NextScheduleTime = ptime(next)
		return reconcile.Result{RequeueAfter: next.Sub(now)}, r.patchStatus(ctx, &sb, st)
	}
	name := sb.BackupName(run)
	created, wait, err := r.createBackup(ctx, &sb, name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if wait != "" {
		// The run stays due; it is taken when the cluster is free, or
		// superseded by a newer run if that comes first.
		r.event(&sb, corev1.EventTypeNormal, "Waiting", "the run of %s waits: %s", stamp(run), wait)
		st.NextScheduleTime = ptime(run)
		return reconcile.Result{RequeueAfter: r.busyWait()}, r.patchStatus(ctx, &sb, st)
	}
	if created {
		if d.Missed > 0 {
			r.event(&sb, corev1.EventTypeWarning, "MissedRuns",
				"%d earlier run(s) since %s were missed (the operator was not running, or the cluster was busy); they are not replayed, one backup is taken for the run of %s",
				d.Missed, stamp(lastRun(&sb)), stamp(run))
		}
		r.event(&sb, corev1.EventTypeNormal, "BackupCreated", "created Backup %s of cluster %s for the run of %s; next run at %s",
			name, sb.Spec.Cluster.Name, stamp(run), stamp(next))
	}
	st.LastScheduleTime, st.LastBackupName, st.NextScheduleTime = ptime(run), name, ptime(next)
	return reconcile.Result{RequeueAfter: next.Sub(now)}, r.patchStatus(ctx, &sb, st)
}

// due is what the schedule asks for at now; `immediate` makes the
// creation time the first run.
func due(sb *apiv1.ScheduledBackup, sched scheduler.Schedule, now time.Time) scheduler.Due {
	if sb.Status.LastScheduleTime == nil && sb.IsImmediate() {
		return scheduler.Due{At: sb.CreationTimestamp.UTC(), Next: sched.Next(now)}
	}
	return sched.DueAt(lastRun(sb), now)
}

// lastRun is the time of the last run taken, or the creation time before the first.
func lastRun(sb *apiv1.ScheduledBackup) time.Time {
	if sb.Status.LastScheduleTime != nil {
		return sb.Status.LastScheduleTime.UTC()
	}
	return sb.CreationTimestamp.UTC()
}

// createBackup creates the run's Backup unless it exists. It creates
// nothing, and says why in wait, while the cluster is missing or another
// of its backups has not finished.
func (r *ScheduledBackupReconciler) createBackup(ctx context.Context, sb *apiv1.ScheduledBackup, name string) (created bool, wait string, err error) {
	var existing apiv1.Backup
	err = r.Live.Get(ctx, types.NamespacedName{Namespace: sb.Namespace, Name: name}, &existing)
	if err == nil {
		return false, "", nil // created by an earlier try whose status update was lost
	}
	if !apierrors.IsNotFound(err) {
		return false, "", err
	}
	var cluster apiv1.Cluster
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: sb.Namespace, Name: sb.Spec.Cluster.Name}, &cluster); err != nil {
		if apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("there is no Cluster %q in namespace %s", sb.Spec.Cluster.Name, sb.Namespace), nil
		}
		return false, "", err
	}
	if busy, err := r.unfinishedBackup(ctx, sb.Namespace, sb.Spec.Cluster.Name); err != nil || busy != "" {
		if busy != "" {
			wait = fmt.Sprintf("Backup %s of cluster %s has not finished", busy, sb.Spec.Cluster.Name)
		}
		return false, wait, err
	}

	b := &apiv1.Backup{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: sb.Namespace,
			Labels:    map[string]string{ClusterLabel: sb.Spec.Cluster.Name, ScheduledBackupLabel: sb.Name},
		},
		Spec: apiv1.BackupSpec{Cluster: sb.Spec.Cluster, Target: sb.Spec.Target, Method: sb.Spec.Method},
	}
	var owner client.Object
	switch sb.Spec.BackupOwnerReference {
	case apiv1.BackupOwnerSelf:
		owner = sb
	case apiv1.BackupOwnerCluster:
		owner = &cluster
	}
	if owner != nil {
		if err := controllerutil.SetOwnerReference(owner, b, r.Client.Scheme()); err != nil {
			return false, "", err
		}
	}
	if err := r.Client.Create(ctx, b); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, "", nil
		}
		return false, "", fmt.Errorf("creating Backup %s: %w", name, err)
	}
	return true, "", nil
}

// unfinishedBackup names a Backup of the cluster that is still pending or
// running, or returns "".
func (r *ScheduledBackupReconciler) unfinishedBackup(ctx context.Context, namespace, cluster string) (string, error) {
	var list apiv1.BackupList
	if err := r.Live.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return "", err
	}
	for i := range list.Items {
		b := &list.Items[i]
		if b.Spec.Cluster.Name == cluster && !b.Done() && b.DeletionTimestamp.IsZero() {
			return b.Name, nil
		}
	}
	return "", nil
}

func (r *ScheduledBackupReconciler) patchStatus(ctx context.Context, sb *apiv1.ScheduledBackup, st *apiv1.ScheduledBackupStatus) error {
	base := sb.DeepCopy()
	sb.Status = *st
	return r.Client.Status().Patch(ctx, sb, client.MergeFrom(base))
}

func (r *ScheduledBackupReconciler) event(sb *apiv1.ScheduledBackup, kind, reason, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(sb, nil, kind, reason, "Schedule", note, args...)
	}
}

func (r *ScheduledBackupReconciler) busyWait() time.Duration {
	if r.BusyWait > 0 {
		return r.BusyWait
	}
	return DefaultBusyWait
}

// SetupWithManager registers the controller: it watches ScheduledBackups,
// and Backups, so that a run waiting for its cluster starts as soon as the
// cluster's running backup finishes.
func (r *ScheduledBackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&apiv1.ScheduledBackup{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&apiv1.Backup{}, handler.EnqueueRequestsFromMapFunc(r.schedulesOfCluster)).
		Named("scheduledbackup").
		Complete(r)
}

// schedulesOfCluster maps a Backup to the ScheduledBackups of its cluster.
func (r *ScheduledBackupReconciler) schedulesOfCluster(ctx context.Context, o client.Object) []reconcile.Request {
	b, ok := o.(*apiv1.Backup)
	if !ok || !b.Done() {
		return nil
	}
	var list apiv1.ScheduledBackupList
	if err := r.Client.List(ctx, &list, client.InNamespace(b.Namespace)); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, sb := range list.Items {
		if sb.Spec.Cluster.Name == b.Spec.Cluster.Name {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: sb.Namespace, Name: sb.Name}})
		}
	}
	return reqs
}

func ptime(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
