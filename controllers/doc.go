// Package controllers holds the reconcilers that `walship operator` runs. Their
// +kubebuilder:rbac markers are the source of config/rbac/role.yaml (make generate).
package controllers
