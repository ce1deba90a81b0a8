package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupMethod is how a backup is taken. walship takes base backups
// itself, streaming the data directory to the cluster's repository.
// +kubebuilder:validation:Enum=walship
type BackupMethod string

// BackupMethodWalship is walship's own base backup (`walship backup`).
const BackupMethodWalship BackupMethod = "walship"

// BackupPhase is where a backup is in its life.
type BackupPhase string

const (
	// BackupPhasePending: accepted, no instance has started it yet.
	BackupPhasePending BackupPhase = "pending"
	// BackupPhaseRunning: an instance is copying the data directory.
	BackupPhaseRunning BackupPhase = "running"
	// BackupPhaseCompleted: the backup and the WAL that ends it are in the repository.
	BackupPhaseCompleted BackupPhase = "completed"
	// BackupPhaseFailed: the backup stopped; Error says why.
	BackupPhaseFailed BackupPhase = "failed"
)

// BackupSpec asks for one base backup of a cluster.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a Backup's spec cannot change once created; delete it and create a new Backup"
type BackupSpec struct {
	// Cluster is the Cluster, in the Backup's namespace, to back up.
	Cluster ClusterReference `json:"cluster"`

	// Target chooses the instance: prefer-standby or primary. Empty means
	// the cluster's spec.backup.target.
	// +optional
	Target BackupTarget `json:"target,omitempty"`

	// Method is how the backup is taken.
	// +kubebuilder:default=walship
	// +optional
	Method BackupMethod `json:"method,omitempty"`
}

// InstanceID names the instance that ran a backup.
type InstanceID struct {
	// PodName is the pod of the instance.
	PodName string `json:"podName,omitempty"`
}

// BackupStatus is what happened to a backup.
type BackupStatus struct {
	// Phase is pending, running, completed or failed.
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`
	// BackupID is the backup's ID in the repository (walship backup list).
	// +optional
	BackupID string `json:"backupId,omitempty"`
	// BeginLSN and EndLSN bound the WAL the backup needs to be consistent.
	// +optional
	BeginLSN string `json:"beginLSN,omitempty"`
	// +optional
	EndLSN string `json:"endLSN,omitempty"`
	// BeginWal and EndWal are the first and last WAL segments it needs.
	// +optional
	BeginWal string `json:"beginWal,omitempty"`
	// +optional
	EndWal string `json:"endWal,omitempty"`
	// Timeline is the timeline the backup was taken on.
	// +optional
	Timeline int32 `json:"timeline,omitempty"`
	// StartedAt and StoppedAt are when the copy began and ended.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	StoppedAt *metav1.Time `json:"stoppedAt,omitempty"`
	// InstanceID is the instance that ran it.
	// +optional
	InstanceID *InstanceID `json:"instanceID,omitempty"`
	// Error says why a failed backup failed.
	// +optional
	Error string `json:"error,omitempty"`
}

// Backup is one base backup of a Cluster, taken once.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=walship
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=".spec.cluster.name"
// +kubebuilder:printcolumn:name="Method",type=string,JSONPath=".spec.method"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=".status.error"
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BackupSpec `json:"spec"`
	// +optional
	Status BackupStatus `json:"status,omitempty"`
}

// BackupList is a list of Backups.
//
// +kubebuilder:object:root=true
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Backup{}, &BackupList{})
}
