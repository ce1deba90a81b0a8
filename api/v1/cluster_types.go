package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cluster is a PostgreSQL cluster: a primary and its standbys, each a pod
// with its own PersistentVolumeClaim, archiving WAL and taking base backups
// into a walship repository. A replica cluster follows another cluster
// (usually in another region) through that cluster's repository.
//
// The spec follows CloudNativePG's field names where the meaning is the same.
// Rules that span fields are CEL rules checked by the API server at admission;
// each message says what is wrong and how to write it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.instances,statuspath=.status.instances,selectorpath=.status.selector
// +kubebuilder:resource:shortName=pgc,categories=walship
// +kubebuilder:printcolumn:name="Instances",type=integer,JSONPath=`.status.instances`,description="Number of instances"
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyInstances`,description="Number of ready instances"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`,description="Cluster phase"
// +kubebuilder:printcolumn:name="Primary",type=string,JSONPath=`.status.currentPrimary`,description="Current primary instance"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec.replica) || !has(self.spec.replica.promotionToken) || (has(self.spec.replica.primary) && self.spec.replica.primary == self.metadata.name)",message="replica.promotionToken is only used to promote this cluster: set replica.primary to this Cluster's name (metadata.name) together with it"
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ClusterSpec `json:"spec"`
	// +optional
	Status ClusterStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ClusterList is a list of Clusters.
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}

// ClusterSpec is the desired state of a Cluster.
//
// +kubebuilder:validation:XValidation:rule="!has(self.replica) || !has(self.replica.source) || (has(self.externalClusters) && self.externalClusters.exists(e, e.name == self.replica.source))",message="replica.source must name an entry of externalClusters: add {name: <source>, repository: ...} to externalClusters or fix the name"
// +kubebuilder:validation:XValidation:rule="!has(self.replica) || !has(self.replica.enabled) || !self.replica.enabled || !has(self.bootstrap) || !has(self.bootstrap.initdb)",message="a replica cluster (replica.enabled: true) starts from its source: bootstrap it with recovery or pg_basebackup from replica.source, not initdb"
// +kubebuilder:validation:XValidation:rule="!has(self.bootstrap) || !has(self.bootstrap.recovery) || !has(self.bootstrap.recovery.source) || (has(self.externalClusters) && self.externalClusters.exists(e, e.name == self.bootstrap.recovery.source && has(e.repository)))",message="bootstrap.recovery.source must name an entry of externalClusters that has a repository: add {name: <source>, repository: {destinationPath: ...}} to externalClusters"
// +kubebuilder:validation:XValidation:rule="!has(self.bootstrap) || !has(self.bootstrap.pg_basebackup) || (has(self.externalClusters) && self.externalClusters.exists(e, e.name == self.bootstrap.pg_basebackup.source && has(e.connectionParameters)))",message="bootstrap.pg_basebackup.source must name an entry of externalClusters that has connectionParameters (host, user, ...): add it to externalClusters"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.storage.storageClass) || (has(self.storage.storageClass) && self.storage.storageClass == oldSelf.storage.storageClass)",message="storage.storageClass cannot change once set (existing volumes keep their class): create a new Cluster, e.g. a replica or a recovery from a backup, to move storage class"
type ClusterSpec struct {
	// Instances is the number of PostgreSQL instances: one primary and
	// instances-1 standbys.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	// +kubebuilder:default=1
	// +optional
	Instances int32 `json:"instances,omitempty"`

	// ImageName is the container image holding PostgreSQL and walship;
	// defaults to the operator's choice for its PostgreSQL major version.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	ImageName string `json:"imageName,omitempty"`

	// PostgresQL configures the server: parameters and pg_hba rules.
	// +optional
	PostgresQL PostgresConfiguration `json:"postgresql,omitempty"`

	// Storage of each instance's data directory.
	// +required
	Storage StorageConfiguration `json:"storage"`

	// Resources of each instance's PostgreSQL container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// EnableSuperuserAccess creates a Secret <name>-superuser with the
	// postgres user's password (and sets the password); default false.
	// +optional
	EnableSuperuserAccess *bool `json:"enableSuperuserAccess,omitempty"`

	// SuperuserSecret names a basic-auth Secret (username, password) to use
	// for the postgres user instead of a generated one.
	// +optional
	SuperuserSecret *LocalObjectReference `json:"superuserSecret,omitempty"`

	// Bootstrap says how the first instance gets its data; it cannot change
	// after the Cluster is created. Default: initdb of database app owned by app.
	// +kubebuilder:default={initdb: {database: app, owner: app}}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="bootstrap cannot change after the Cluster is created: it only says how the first instance got its data; create a new Cluster to bootstrap differently"
	// +optional
	Bootstrap *BootstrapConfiguration `json:"bootstrap,omitempty"`

	// Backup configures WAL archiving and base backups.
	// +optional
	Backup *BackupConfiguration `json:"backup,omitempty"`

	// Replica makes this Cluster follow another one through its repository.
	// +optional
	Replica *ReplicaClusterConfiguration `json:"replica,omitempty"`

	// ExternalClusters are other PostgreSQL clusters this one can bootstrap
	// from or follow, by connection or by repository.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +optional
	ExternalClusters []ExternalCluster `json:"externalClusters,omitempty"`

	// Monitoring configures the metrics endpoint of the instances.
	// +optional
	Monitoring *MonitoringConfiguration `json:"monitoring,omitempty"`
}

// PostgresConfiguration is the server configuration.
type PostgresConfiguration struct {
	// Parameters go into postgresql.conf (walship.conf, which the instance
	// manager writes; instance/pgconf renders it). walship manages the settings
	// that archiving, recovery, replication and TLS depend on; they cannot be
	// set here (the list is instance/pgconf.Controlled; a test keeps the two
	// equal). wal_level may be replica (the default) or logical;
	// max_wal_senders and max_replication_slots may be raised above walship's
	// defaults (10 and 32).
	// +kubebuilder:validation:MaxProperties=1000
	// +kubebuilder:validation:XValidation:rule="!self.exists(k, k in ['archive_mode', 'archive_command', 'restore_command', 'recovery_target', 'recovery_target_time', 'recovery_target_xid', 'recovery_target_name', 'recovery_target_lsn', 'recovery_target_timeline', 'recovery_target_action', 'recovery_target_inclusive', 'primary_conninfo', 'primary_slot_name', 'data_directory', 'hba_file', 'ident_file', 'config_file', 'port', 'listen_addresses', 'unix_socket_directories', 'ssl', 'ssl_cert_file', 'ssl_key_file', 'ssl_ca_file', 'hot_standby'])",message="postgresql.parameters must not set archive_mode, archive_command, restore_command, recovery_target*, primary_conninfo, primary_slot_name, data_directory, hba_file, ident_file, config_file, port, listen_addresses, unix_socket_directories, ssl, ssl_cert_file, ssl_key_file, ssl_ca_file or hot_standby: walship manages them (configure backup, bootstrap and replica instead)"
	// +kubebuilder:validation:XValidation:rule="!('wal_level' in self) || self['wal_level'] in ['replica', 'logical']",message="postgresql.parameters: wal_level must be replica (the default) or logical; minimal can neither archive nor replicate"
	// +optional
	Parameters map[string]string `json:"parameters,omitempty"`

	// PgHBA lines are added to pg_hba.conf after walship's own rules (local
	// access for the instance manager and the probes, and replication with
	// a client certificate) and before the closing rule, which asks every
	// other connection for a password (host all all all scram-sha-256),
	// e.g. "hostssl all all 10.0.0.0/8 scram-sha-256".
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=1024
	// +optional
	PgHBA []string `json:"pg_hba,omitempty"`
}

// StorageConfiguration is the PersistentVolumeClaim of each instance.
type StorageConfiguration struct {
	// Size of the volume, a quantity such as 10Gi; it can grow but not shrink.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",message="storage.size must be a positive quantity such as 10Gi or 500Mi"
	// +kubebuilder:validation:XValidation:rule="!isQuantity(self) || !isQuantity(oldSelf) || quantity(self).compareTo(quantity(oldSelf)) >= 0",message="storage.size cannot shrink: volumes can only grow; set it to at least the current size"
	// +required
	Size string `json:"size"`

	// StorageClass of the volumes; the cluster's default class when empty.
	// It cannot change once set.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClass *string `json:"storageClass,omitempty"`
}

// BootstrapConfiguration says how the first instance gets its data: exactly
// one of initdb, recovery or pg_basebackup.
// +kubebuilder:validation:XValidation:rule="[has(self.initdb), has(self.recovery), has(self.pg_basebackup)].filter(x, x).size() == 1",message="bootstrap needs exactly one of initdb (a new database), recovery (from a backup or an external cluster's repository) or pg_basebackup (a copy of a running external cluster)"
type BootstrapConfiguration struct {
	// InitDB creates a new, empty database.
	// +optional
	InitDB *BootstrapInitDB `json:"initdb,omitempty"`

	// Recovery restores a base backup and replays WAL from a repository.
	// +optional
	Recovery *BootstrapRecovery `json:"recovery,omitempty"`

	// PgBaseBackup copies a running external cluster with pg_basebackup.
	// +optional
	PgBaseBackup *BootstrapPgBaseBackup `json:"pg_basebackup,omitempty"`
}

// BootstrapInitDB creates a new database with initdb.
// +kubebuilder:validation:XValidation:rule="!has(self.locale) || !(has(self.localeCollate) || has(self.localeCType))",message="initdb: set either locale, or localeCollate and localeCType, not both"
type BootstrapInitDB struct {
	// Database is the application database to create; default app.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	// +kubebuilder:default=app
	// +optional
	Database string `json:"database,omitempty"`

	// Owner of the database, a role created with it; default app.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	// +kubebuilder:default=app
	// +optional
	Owner string `json:"owner,omitempty"`

	// Secret is a basic-auth Secret (username, password) for the owner;
	// generated as <name>-app when empty.
	// +optional
	Secret *LocalObjectReference `json:"secret,omitempty"`

	// Encoding of the template databases; default UTF8.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	Encoding string `json:"encoding,omitempty"`

	// Locale sets both LC_COLLATE and LC_CTYPE.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Locale string `json:"locale,omitempty"`

	// LocaleCollate is LC_COLLATE.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LocaleCollate string `json:"localeCollate,omitempty"`

	// LocaleCType is LC_CTYPE.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LocaleCType string `json:"localeCType,omitempty"`

	// DataChecksums turns on page checksums (initdb -k); default true.
	// +optional
	DataChecksums *bool `json:"dataChecksums,omitempty"`
}

// BootstrapRecovery restores a base backup and replays WAL: from a Backup of
// this namespace, or from the repository of an external cluster.
// +kubebuilder:validation:XValidation:rule="has(self.backup) != has(self.source)",message="bootstrap.recovery needs exactly one of backup ({name: <Backup>}) or source (the name of an externalClusters entry with a repository)"
type BootstrapRecovery struct {
	// Backup is a Backup in this namespace to restore.
	// +optional
	Backup *LocalObjectReference `json:"backup,omitempty"`

	// Source names the externalClusters entry whose repository holds the
	// backups and WAL to recover from.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Source string `json:"source,omitempty"`

	// RecoveryTarget stops recovery at a point in time, transaction, restore
	// point or LSN; without it recovery replays every archived segment.
	// +optional
	RecoveryTarget *RecoveryTarget `json:"recoveryTarget,omitempty"`
}

// RecoveryTarget is where point-in-time recovery stops; at most one of
// targetTime, targetXID, targetName, targetLSN and targetImmediate.
// +kubebuilder:validation:XValidation:rule="[has(self.targetTime), has(self.targetXID), has(self.targetName), has(self.targetLSN), has(self.targetImmediate) && self.targetImmediate].filter(x, x).size() <= 1",message="recoveryTarget: set at most one of targetTime, targetXID, targetName, targetLSN or targetImmediate"
type RecoveryTarget struct {
	// BackupID is the backup to restore; default: the newest complete backup
	// that ends before the target.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	BackupID string `json:"backupID,omitempty"`

	// TargetTLI is the timeline to follow: latest (default), current, or a
	// timeline number.
	// +kubebuilder:validation:Pattern=`^(latest|current|[1-9][0-9]*)$`
	// +optional
	TargetTLI string `json:"targetTLI,omitempty"`

	// TargetTime stops at this time: RFC 3339 or PostgreSQL's form
	// (2026-11-25 14:05:00.123+00); UTC when no zone is given.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}`
	// +optional
	TargetTime string `json:"targetTime,omitempty"`

	// TargetXID stops at the commit of this transaction id.
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=20
	// +optional
	TargetXID string `json:"targetXID,omitempty"`

	// TargetName stops at this restore point (pg_create_restore_point).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	TargetName string `json:"targetName,omitempty"`

	// TargetLSN stops at this WAL location, such as 0/3000060.
	// +kubebuilder:validation:Pattern=`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`
	// +optional
	TargetLSN string `json:"targetLSN,omitempty"`

	// TargetImmediate stops as soon as the backup is consistent.
	// +optional
	TargetImmediate *bool `json:"targetImmediate,omitempty"`

	// Exclusive stops just before the target time, transaction or LSN
	// instead of just after it.
	// +optional
	Exclusive *bool `json:"exclusive,omitempty"`
}

// BootstrapPgBaseBackup copies a running external cluster.
type BootstrapPgBaseBackup struct {
	// Source names the externalClusters entry to copy; its
	// connectionParameters must allow a replication connection.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source"`

	// Database is the application database; default app.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Database string `json:"database,omitempty"`

	// Owner of the application database; default app.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Owner string `json:"owner,omitempty"`

	// Secret is a basic-auth Secret for the owner.
	// +optional
	Secret *LocalObjectReference `json:"secret,omitempty"`
}

// BackupConfiguration configures continuous archiving and base backups.
type BackupConfiguration struct {
	// Repository receives the WAL and the base backups.
	// +required
	Repository BackupRepository `json:"repository"`

	// RetentionPolicy keeps every backup needed to recover to any point of
	// this window: a number and a unit, d (days), w (weeks) or m (months),
	// as in 30d, 4w or 6m. Empty: nothing is deleted.
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[1-9][0-9]*[dwm]$')",message="retentionPolicy must be a number and a unit, d (days), w (weeks) or m (months), such as 30d, 4w or 6m"
	// +optional
	RetentionPolicy string `json:"retentionPolicy,omitempty"`

	// Target is the instance that takes backups: prefer-standby (default)
	// or primary.
	// +kubebuilder:default=prefer-standby
	// +optional
	Target BackupTarget `json:"target,omitempty"`
}

// ReplicaClusterConfiguration makes a Cluster a replica cluster: its
// designated primary restores WAL from the source's repository (and archives
// its own), its standbys stream from the designated primary.
type ReplicaClusterConfiguration struct {
	// Enabled makes this Cluster a replica of source; setting it to false
	// promotes it.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Source names the externalClusters entry this cluster follows.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source"`

	// Primary names the cluster that should be primary, for a planned
	// switchover between regions: this Cluster's name promotes it, another
	// name demotes it.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Primary string `json:"primary,omitempty"`

	// PromotionToken is the demoted primary's status.demotionToken, given to
	// the cluster being promoted so it waits until it has replayed every
	// transaction of the old primary.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	PromotionToken string `json:"promotionToken,omitempty"`
}

// ExternalCluster is another PostgreSQL cluster: reachable by connection
// parameters, by its repository, or both.
// +kubebuilder:validation:XValidation:rule="has(self.connectionParameters) || has(self.repository)",message="an externalClusters entry needs connectionParameters (to connect to it) or a repository (to read its backups and WAL), or both"
type ExternalCluster struct {
	// Name by which bootstrap and replica refer to this cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// ConnectionParameters are libpq keywords: host, port, user, dbname,
	// sslmode, ...
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	ConnectionParameters map[string]string `json:"connectionParameters,omitempty"`

	// Password is the Secret key holding the password of user.
	// +optional
	Password *SecretKeySelector `json:"password,omitempty"`

	// SSLCert is the Secret key holding the client certificate.
	// +optional
	SSLCert *SecretKeySelector `json:"sslCert,omitempty"`

	// SSLKey is the Secret key holding the client certificate's key.
	// +optional
	SSLKey *SecretKeySelector `json:"sslKey,omitempty"`

	// SSLRootCert is the Secret key holding the CA that signed the server's
	// certificate.
	// +optional
	SSLRootCert *SecretKeySelector `json:"sslRootCert,omitempty"`

	// Repository is the cluster's walship repository.
	// +optional
	Repository *BackupRepository `json:"repository,omitempty"`
}

// MonitoringConfiguration configures metrics.
type MonitoringConfiguration struct {
	// EnablePodMonitor creates a PodMonitor (Prometheus operator) for the
	// instances' metrics port.
	// +optional
	EnablePodMonitor bool `json:"enablePodMonitor,omitempty"`
}

// ClusterStatus is the observed state of a Cluster.
type ClusterStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is a short description of the cluster's state.
	// +optional
	Phase string `json:"phase,omitempty"`

	// PhaseReason says why the cluster is in this phase.
	// +optional
	PhaseReason string `json:"phaseReason,omitempty"`

	// Instances is the number of instances (pods) that exist.
	// +optional
	Instances int32 `json:"instances,omitempty"`

	// ReadyInstances is the number of instances that are ready.
	// +optional
	ReadyInstances int32 `json:"readyInstances,omitempty"`

	// Selector is the label selector of the instances' pods (for the scale
	// subresource).
	// +optional
	Selector string `json:"selector,omitempty"`

	// InstancesStatus is the state of each instance.
	// +listType=map
	// +listMapKey=name
	// +optional
	InstancesStatus []InstanceStatus `json:"instancesStatus,omitempty"`

	// CurrentPrimary is the instance that is primary now (in a replica
	// cluster: the designated primary).
	// +optional
	CurrentPrimary string `json:"currentPrimary,omitempty"`

	// TargetPrimary is the instance that should be primary; it differs from
	// currentPrimary during a switchover or failover.
	// +optional
	TargetPrimary string `json:"targetPrimary,omitempty"`

	// TimelineID is the primary's timeline.
	// +optional
	TimelineID int32 `json:"timelineID,omitempty"`

	// Conditions: Ready, ContinuousArchiving, LastBackupSucceeded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// FirstRecoverabilityPoint is the earliest time the cluster can be
	// recovered to from its repository.
	// +optional
	FirstRecoverabilityPoint *metav1.Time `json:"firstRecoverabilityPoint,omitempty"`

	// LastSuccessfulBackup is when the last successful backup finished.
	// +optional
	LastSuccessfulBackup *metav1.Time `json:"lastSuccessfulBackup,omitempty"`

	// DemotionToken is written when this cluster's primary was demoted in a
	// planned switchover: pass it as replica.promotionToken of the cluster
	// being promoted.
	// +optional
	DemotionToken string `json:"demotionToken,omitempty"`

	// LastPromotionToken is the last promotionToken this cluster acted on.
	// +optional
	LastPromotionToken string `json:"lastPromotionToken,omitempty"`
}

// InstanceStatus is the state of one instance.
type InstanceStatus struct {
	// Name of the instance's pod.
	Name string `json:"name"`

	// Role is primary, or replica for a standby.
	// +optional
	Role string `json:"role,omitempty"`

	// Ready is true when PostgreSQL accepts connections.
	// +optional
	Ready bool `json:"ready,omitempty"`

	// TimelineID of the instance.
	// +optional
	TimelineID int32 `json:"timelineID,omitempty"`

	// CurrentLSN is the instance's WAL position: written (primary) or
	// replayed (standby).
	// +optional
	CurrentLSN string `json:"currentLSN,omitempty"`

	// Message says what is wrong when the instance is not ready.
	// +optional
	Message string `json:"message,omitempty"`
}

func init() {
	SchemeBuilder.Register(&Cluster{}, &ClusterList{})
}
