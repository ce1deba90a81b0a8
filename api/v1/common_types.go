package v1

// Types shared by Cluster, Backup and ScheduledBackup.

// ClusterReference names a Cluster in the same namespace.
type ClusterReference struct {
	// Name of the Cluster.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// SecretKeySelector names one key of a Secret in the same namespace.
type SecretKeySelector struct {
	LocalObjectReference `json:",inline"`

	// Key of the Secret whose value is used.
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// BackupTarget says which instance of a Cluster takes a base backup.
// +kubebuilder:validation:Enum=primary;prefer-standby
type BackupTarget string

const (
	// BackupTargetPrimary takes backups on the primary.
	BackupTargetPrimary BackupTarget = "primary"
	// BackupTargetPreferStandby takes backups on the most advanced standby,
	// and on the primary when there is no healthy standby.
	BackupTargetPreferStandby BackupTarget = "prefer-standby"
)

// CompressionType is a codec for WAL and backup objects.
// +kubebuilder:validation:Enum=zstd;s2;gzip;none
type CompressionType string

const (
	CompressionZstd CompressionType = "zstd"
	CompressionS2   CompressionType = "s2"
	CompressionGzip CompressionType = "gzip"
	CompressionNone CompressionType = "none"
)

// EncryptionType is the object store's server-side encryption.
// +kubebuilder:validation:Enum=AES256;"aws:kms"
type EncryptionType string

const (
	EncryptionAES256 EncryptionType = "AES256"
	EncryptionAWSKMS EncryptionType = "aws:kms"
)

// BackupRepository is where a Cluster's WAL and base backups live: a walship
// repository in an object store (CloudNativePG calls this barmanObjectStore).
// +kubebuilder:validation:XValidation:rule="self.destinationPath.startsWith('s3://') || !has(self.s3Credentials)",message="s3Credentials apply only to an s3:// destinationPath; remove them or write destinationPath as s3://bucket/prefix"
type BackupRepository struct {
	// DestinationPath is the repository URL: s3://bucket/prefix, or
	// file:///path for a folder every instance mounts.
	// +kubebuilder:validation:Pattern=`^(s3://[^/]+|file:///.*)`
	// +kubebuilder:validation:XValidation:rule="self.startsWith('s3://') || self.startsWith('file:///')",message="destinationPath must be a repository URL such as s3://bucket/prefix or file:///path"
	DestinationPath string `json:"destinationPath"`

	// ServerName is the folder of this cluster inside destinationPath.
	// Defaults to the Cluster's name; a replica cluster names its source's.
	// +optional
	ServerName string `json:"serverName,omitempty"`

	// EndpointURL of an S3-compatible store (MinIO, Ceph, ...); empty for AWS.
	// +kubebuilder:validation:Pattern=`^https?://`
	// +optional
	EndpointURL string `json:"endpointURL,omitempty"`

	// EndpointCA is a Secret key holding the PEM CA bundle that signed the
	// endpoint's certificate.
	// +optional
	EndpointCA *SecretKeySelector `json:"endpointCA,omitempty"`

	// Region of the bucket; defaults to the SDK's configuration, else us-east-1.
	// +optional
	Region string `json:"region,omitempty"`

	// PathStyle addresses the bucket in the path (http://host/bucket), as
	// MinIO and most S3-compatible stores expect.
	// +optional
	PathStyle bool `json:"pathStyle,omitempty"`

	// S3Credentials says how to authenticate to S3.
	// +optional
	S3Credentials *S3Credentials `json:"s3Credentials,omitempty"`

	// Age turns on client-side encryption with age: objects are encrypted
	// before they leave the pod.
	// +optional
	Age *AgeEncryption `json:"age,omitempty"`

	// Wal configures WAL archiving.
	// +optional
	Wal *WalBackupConfiguration `json:"wal,omitempty"`

	// Data configures base backups.
	// +optional
	Data *DataBackupConfiguration `json:"data,omitempty"`
}

// S3Credentials are S3 credentials: either keys read from Secrets, or the
// identity of the pod's service account (IAM role, workload identity).
// +kubebuilder:validation:XValidation:rule="!(has(self.inheritFromIAMRole) && self.inheritFromIAMRole) || !(has(self.accessKeyId) || has(self.secretAccessKey) || has(self.sessionToken))",message="s3Credentials: use either inheritFromIAMRole: true or accessKeyId/secretAccessKey from a Secret, not both"
// +kubebuilder:validation:XValidation:rule="(has(self.inheritFromIAMRole) && self.inheritFromIAMRole) || (has(self.accessKeyId) && has(self.secretAccessKey))",message="s3Credentials needs accessKeyId and secretAccessKey (each {name: <secret>, key: <key>}), or inheritFromIAMRole: true to use the pod's cloud identity"
type S3Credentials struct {
	// AccessKeyID is the Secret key holding the access key id.
	// +optional
	AccessKeyID *SecretKeySelector `json:"accessKeyId,omitempty"`

	// SecretAccessKey is the Secret key holding the secret access key.
	// +optional
	SecretAccessKey *SecretKeySelector `json:"secretAccessKey,omitempty"`

	// SessionToken is the Secret key holding a session token, for temporary
	// credentials.
	// +optional
	SessionToken *SecretKeySelector `json:"sessionToken,omitempty"`

	// InheritFromIAMRole uses the credentials of the pod's cloud identity
	// (IRSA, EKS pod identity, instance profile) instead of Secrets.
	// +optional
	InheritFromIAMRole bool `json:"inheritFromIAMRole,omitempty"`
}

// AgeEncryption encrypts objects on the client with age.
type AgeEncryption struct {
	// Recipients are the age public keys (age1...) objects are encrypted for.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Pattern=`^age1[0-9a-z]+$`
	Recipients []string `json:"recipients"`

	// Identity is the Secret key holding the age identity (AGE-SECRET-KEY-1...)
	// that decrypts them; needed to restore and to read a source's WAL.
	// +optional
	Identity *SecretKeySelector `json:"identity,omitempty"`
}

// WalBackupConfiguration configures WAL archiving.
type WalBackupConfiguration struct {
	// Compression of WAL segments; default zstd.
	// +kubebuilder:default=zstd
	// +optional
	Compression CompressionType `json:"compression,omitempty"`

	// Encryption is the store's server-side encryption of WAL objects.
	// +optional
	Encryption EncryptionType `json:"encryption,omitempty"`

	// MaxParallel is how many segments are uploaded at once (and fetched
	// ahead during recovery); default 4.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	MaxParallel int32 `json:"maxParallel,omitempty"`
}

// DataBackupConfiguration configures base backups.
type DataBackupConfiguration struct {
	// Compression of backup objects; default zstd.
	// +kubebuilder:default=zstd
	// +optional
	Compression CompressionType `json:"compression,omitempty"`

	// Encryption is the store's server-side encryption of backup objects.
	// +optional
	Encryption EncryptionType `json:"encryption,omitempty"`

	// Jobs is how many objects are uploaded at once; default 2.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	Jobs int32 `json:"jobs,omitempty"`

	// ImmediateCheckpoint asks PostgreSQL for a fast checkpoint when a
	// backup starts, instead of a spread one.
	// +optional
	ImmediateCheckpoint bool `json:"immediateCheckpoint,omitempty"`
}
