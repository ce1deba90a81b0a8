// Package controllers holds the reconcilers that `walship operator` runs. They
// never move data: they create and update Kubernetes objects that tell
// instance managers what to do, and record what happened.
//
// Each reconciler declares, next to its code, the +kubebuilder:rbac rules of
// what it reads and writes; they are the source of config/rbac/role.yaml
// (make generate), so the operator gets no more than its reconcilers use.
package controllers
