// Package controllers holds the reconcilers that `walship operator` runs.
//
// The +kubebuilder:rbac markers of this package are the source of
// config/rbac/role.yaml (make generate). The ones below are what every
// reconciler of walship's own resources needs; each reconciler adds the rules
// of the objects it manages next to its code.
//
// +kubebuilder:rbac:groups=postgresql.walship.io,resources=clusters;backups;scheduledbackups,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=postgresql.walship.io,resources=clusters/status;backups/status;scheduledbackups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=postgresql.walship.io,resources=clusters/finalizers;backups/finalizers;scheduledbackups/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
package controllers
