package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupOwnerReference says which object owns the Backups a schedule
// creates, so that deleting it deletes them too.
// +kubebuilder:validation:Enum=none;self;cluster
type BackupOwnerReference string

const (
	// BackupOwnerNone: the Backups outlive the schedule and the cluster.
	BackupOwnerNone BackupOwnerReference = "none"
	// BackupOwnerSelf: the ScheduledBackup owns them.
	BackupOwnerSelf BackupOwnerReference = "self"
	// BackupOwnerCluster: the Cluster owns them.
	BackupOwnerCluster BackupOwnerReference = "cluster"
)

// ScheduledBackupSpec takes Backups of a cluster on a schedule.
//
// The schedule is checked twice: the rules below catch every malformed
// field at admission; the controller, which parses it with
// scheduler.ParseSchedule, also refuses what a pattern cannot see (a range
// written backwards such as 50-10, a date that never comes such as
// February 30) and says so in an event.
type ScheduledBackupSpec struct {
	// Cluster is the Cluster, in the same namespace, to back up.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="cluster cannot change; create another ScheduledBackup for another cluster"
	Cluster ClusterReference `json:"cluster"`

	// Schedule is when to take backups, in UTC. Standard 5-field cron,
	// "minute hour day-of-month month day-of-week" ("0 3 * * *" is every day
	// at 03:00 UTC); or CloudNativePG's 6 fields with a leading seconds
	// field that is one plain number ("0 0 3 * * *"); or @daily, @hourly,
	// @weekly, @monthly, @yearly, @every 6h. A day of the month and a day of
	// the week together are refused: cron runs when EITHER matches.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^ *(?:@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)|@every +(?:[0-9]+(?:[.][0-9]+)?(?:ns|us|ms|s|m|h))+|(?:[0-5]?[0-9] +)?(?:[*]|[0-5]?[0-9](?:-[0-5]?[0-9])?)(?:/[1-9][0-9]{0,2})?(?:,(?:[*]|[0-5]?[0-9](?:-[0-5]?[0-9])?)(?:/[1-9][0-9]{0,2})?)* +(?:[*]|(?:[01]?[0-9]|2[0-3])(?:-(?:[01]?[0-9]|2[0-3]))?)(?:/[1-9][0-9]{0,2})?(?:,(?:[*]|(?:[01]?[0-9]|2[0-3])(?:-(?:[01]?[0-9]|2[0-3]))?)(?:/[1-9][0-9]{0,2})?)* +(?:[*?]|(?:0?[1-9]|[12][0-9]|3[01])(?:-(?:0?[1-9]|[12][0-9]|3[01]))?)(?:/[1-9][0-9]{0,2})?(?:,(?:[*?]|(?:0?[1-9]|[12][0-9]|3[01])(?:-(?:0?[1-9]|[12][0-9]|3[01]))?)(?:/[1-9][0-9]{0,2})?)* +(?:[*]|(?:0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))(?:-(?:0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(?:/[1-9][0-9]{0,2})?(?:,(?:[*]|(?:0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))(?:-(?:0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(?:/[1-9][0-9]{0,2})?)* +(?:[*?]|(?:[0-6]|(?i:sun|mon|tue|wed|thu|fri|sat))(?:-(?:[0-6]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)(?:/[1-9][0-9]{0,2})?(?:,(?:[*?]|(?:[0-6]|(?i:sun|mon|tue|wed|thu|fri|sat))(?:-(?:[0-6]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)(?:/[1-9][0-9]{0,2})?)*) *$')",message="schedule is not valid cron: write 5 fields 'minute hour day-of-month month day-of-week' in UTC, e.g. '0 3 * * *' (03:00 every day), minutes 0-59, hours 0-23, days 1-31, months 1-12 or JAN-DEC, days of the week 0-6 or SUN-SAT; 6 fields need a leading seconds field that is one number ('0 0 3 * * *'); or @daily, @hourly, @weekly, @monthly, @every 6h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^ *(?:[^ ]+ +)?[^ ]+ +[^ ]+ +(?:[^*? ][^ ]*|[*?][^ ]+) +[^ ]+ +(?:[^*? ][^ ]*|[*?][^ ]+) *$')",message="schedule sets both a day of the month and a day of the week; cron runs when EITHER matches, which is rarely meant: set one and write * for the other, or use two ScheduledBackups"
	Schedule string `json:"schedule"`

	// Immediate takes a first backup as soon as the ScheduledBackup is
	// created, before the first scheduled time.
	// +optional
	Immediate *bool `json:"immediate,omitempty"`

	// Suspend stops new backups; a running one finishes.
	// +optional
	Suspend *bool `json:"suspend,omitempty"`

	// BackupOwnerReference is the owner of the created Backups: none, self
	// (this ScheduledBackup) or cluster.
	// +kubebuilder:default=none
	// +optional
	BackupOwnerReference BackupOwnerReference `json:"backupOwnerReference,omitempty"`

	// Target chooses the instance: prefer-standby or primary. Empty means
	// the cluster's spec.backup.target.
	// +optional
	Target BackupTarget `json:"target,omitempty"`

	// Method is how the backups are taken.
	// +kubebuilder:default=walship
	// +optional
	Method BackupMethod `json:"method,omitempty"`
}

// ScheduledBackupStatus is what the schedule did last and will do next.
type ScheduledBackupStatus struct {
	// LastCheckTime is when the controller last looked at the schedule.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
	// LastScheduleTime is the scheduled time of the last Backup created.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is the next time a Backup is due (unset while suspended).
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// LastBackupName is the Backup created last.
	// +optional
	LastBackupName string `json:"lastBackupName,omitempty"`
}

// ScheduledBackup creates Backups of a Cluster on a schedule.
//
// Its name is at most 48 characters, so that the Backups it names
// "<name>-<YYYYMMDDhhmmss>" fit in a label value.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=walship
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 48",message="a ScheduledBackup's name is at most 48 characters, so that its Backups' names (name-YYYYMMDDhhmmss) stay valid label values"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=".spec.cluster.name"
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=".spec.schedule"
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=".spec.suspend"
// +kubebuilder:printcolumn:name="Last Backup",type=date,JSONPath=".status.lastScheduleTime"
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=".status.nextScheduleTime"
type ScheduledBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ScheduledBackupSpec `json:"spec"`
	// +optional
	Status ScheduledBackupStatus `json:"status,omitempty"`
}

// ScheduledBackupList is a list of ScheduledBackups.
//
// +kubebuilder:object:root=true
type ScheduledBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ScheduledBackup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ScheduledBackup{}, &ScheduledBackupList{})
}
