// Package v1 holds walship's Kubernetes API: the Cluster, Backup and
// ScheduledBackup resources of the postgresql.walship.io group.
//
// +kubebuilder:object:generate=true
// +groupName=postgresql.walship.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every walship resource.
	GroupVersion = schema.GroupVersion{Group: "postgresql.walship.io", Version: "v1"}

	// SchemeBuilder registers the resources with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the resources of this group and version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
