package v1_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/walship/walship/api/v1"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// validCluster is a Cluster the API server accepts; each case below breaks
// one rule of it.
func validCluster(ns, name string) *v1.Cluster {
	return &v1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ClusterSpec{
			Instances: 3,
			Storage:   v1.StorageConfiguration{Size: "1Gi", StorageClass: ptr.To("standard")},
			Bootstrap: &v1.BootstrapConfiguration{InitDB: &v1.BootstrapInitDB{Database: "shop", Owner: "shop"}},
			Backup: &v1.BackupConfiguration{
				RetentionPolicy: "30d",
				Repository: v1.BackupRepository{
					DestinationPath: "s3://bucket/prefix",
					S3Credentials: &v1.S3Credentials{
						AccessKeyID:     &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s3"}, Key: "id"},
						SecretAccessKey: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s3"}, Key: "secret"},
					},
				},
			},
			ExternalClusters: []v1.ExternalCluster{{
				Name:                 "origin",
				ConnectionParameters: map[string]string{"host": "origin-rw", "user": "streaming_replica"},
				Repository:           &v1.BackupRepository{DestinationPath: "s3://bucket/origin"},
			}},
		},
	}
}

func TestValidClusterIsAcceptedWithDefaults(t *testing.T) {
	ns := env.Namespace(t)
	c := validCluster(ns, "ok")
	c.Spec.Bootstrap = nil
	c.Spec.Instances = 0
	c.Spec.Backup.Repository.Wal = &v1.WalBackupConfiguration{}
	c.Spec.PostgresQL.Parameters = map[string]string{"wal_level": "logical", "timezone": "Asia/Seoul"}
	if err := env.Client.Create(ctx(t), c); err != nil {
		t.Fatalf("a valid Cluster was rejected: %v", err)
	}
	// The API server applied the CRD's defaults.
	if c.Spec.Instances != 1 {
		t.Errorf("instances defaulted to %d, want 1", c.Spec.Instances)
	}
	if b := c.Spec.Bootstrap; b == nil || b.InitDB == nil || b.InitDB.Database != "app" || b.InitDB.Owner != "app" {
		t.Errorf("bootstrap defaulted to %+v, want initdb of database app owned by app", b)
	}
	if c.Spec.Backup.Target != v1.BackupTargetPreferStandby {
		t.Errorf("backup.target defaulted to %q, want prefer-standby", c.Spec.Backup.Target)
	}
	if c.Spec.Backup.Repository.Wal.Compression != v1.CompressionZstd {
		t.Errorf("wal.compression defaulted to %q, want zstd", c.Spec.Backup.Repository.Wal.Compression)
	}
}

func TestInvalidClusterIsRejected(t *testing.T) {
	ns := env.Namespace(t)
	secret := func(name, key string) *v1.SecretKeySelector {
		return &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: name}, Key: key}
	}
	recovery := func(c *v1.Cluster, r *v1.BootstrapRecovery) {
		c.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: r}
	}
	target := func(c *v1.Cluster, rt *v1.RecoveryTarget) {
		recovery(c, &v1.BootstrapRecovery{Source: "origin", RecoveryTarget: rt})
	}
	replica := func(c *v1.Cluster, source string) {
		c.Spec.Replica = &v1.ReplicaClusterConfiguration{Enabled: ptr.To(true), Source: source}
		recovery(c, &v1.BootstrapRecovery{Source: "origin"})
	}
	cases := []struct {
		name   string
		mutate func(c *v1.Cluster)
		want   string // part of the API server's message
	}{
		{"no instances", func(c *v1.Cluster) { c.Spec.Instances = -1 }, "spec.instances: Invalid value: -1: spec.instances in body should be greater than or equal to 1"},
		{"two bootstrap methods", func(c *v1.Cluster) {
			c.Spec.Bootstrap.Recovery = &v1.BootstrapRecovery{Source: "origin"}
		}, "bootstrap needs exactly one of initdb"},
		{"empty bootstrap", func(c *v1.Cluster) { c.Spec.Bootstrap = &v1.BootstrapConfiguration{} }, "bootstrap needs exactly one of initdb"},
		{"initdb locale and localeCollate", func(c *v1.Cluster) {
			c.Spec.Bootstrap.InitDB.Locale = "C.UTF-8"
			c.Spec.Bootstrap.InitDB.LocaleCollate = "C"
		}, "initdb: set either locale, or localeCollate and localeCType, not both"},
		{"recovery from backup and source", func(c *v1.Cluster) {
			recovery(c, &v1.BootstrapRecovery{Source: "origin", Backup: &v1.LocalObjectReference{Name: "b1"}})
		}, "bootstrap.recovery needs exactly one of backup"},
		{"recovery from nothing", func(c *v1.Cluster) { recovery(c, &v1.BootstrapRecovery{}) }, "bootstrap.recovery needs exactly one of backup"},
		{"recovery source not an external cluster", func(c *v1.Cluster) {
			recovery(c, &v1.BootstrapRecovery{Source: "nowhere"})
		}, "bootstrap.recovery.source must name an entry of externalClusters that has a repository"},
		{"recovery source without repository", func(c *v1.Cluster) {
			c.Spec.ExternalClusters[0].Repository = nil
			recovery(c, &v1.BootstrapRecovery{Source: "origin"})
		}, "bootstrap.recovery.source must name an entry of externalClusters that has a repository"},
		{"pg_basebackup source not an external cluster", func(c *v1.Cluster) {
			c.Spec.Bootstrap = &v1.BootstrapConfiguration{PgBaseBackup: &v1.BootstrapPgBaseBackup{Source: "nowhere"}}
		}, "bootstrap.pg_basebackup.source must name an entry of externalClusters that has connectionParameters"},
		{"targetTime and targetLSN", func(c *v1.Cluster) {
			target(c, &v1.RecoveryTarget{TargetTime: "2026-11-25 14:05:00+00", TargetLSN: "0/3000060"})
		}, "recoveryTarget: set at most one of targetTime, targetXID, targetName, targetLSN or targetImmediate"},
		{"targetImmediate and targetName", func(c *v1.Cluster) {
			target(c, &v1.RecoveryTarget{TargetImmediate: ptr.To(true), TargetName: "before-migration"})
		}, "recoveryTarget: set at most one of"},
		{"targetXID and targetTime", func(c *v1.Cluster) {
			target(c, &v1.RecoveryTarget{TargetXID: "1234", TargetTime: "2026-11-25T14:05:00Z"})
		}, "recoveryTarget: set at most one of"},
		{"malformed targetLSN", func(c *v1.Cluster) { target(c, &v1.RecoveryTarget{TargetLSN: "3000060"}) }, "spec.bootstrap.recovery.recoveryTarget.targetLSN"},
		{"malformed targetTLI", func(c *v1.Cluster) { target(c, &v1.RecoveryTarget{TargetTLI: "newest"}) }, "spec.bootstrap.recovery.recoveryTarget.targetTLI"},
		{"retention without unit", func(c *v1.Cluster) { c.Spec.Backup.RetentionPolicy = "30" }, "retentionPolicy must be a number and a unit, d (days), w (weeks) or m (months), such as 30d, 4w or 6m"},
		{"retention in hours", func(c *v1.Cluster) { c.Spec.Backup.RetentionPolicy = "12h" }, "retentionPolicy must be a number and a unit"},
		{"retention of zero days", func(c *v1.Cluster) { c.Spec.Backup.RetentionPolicy = "0d" }, "retentionPolicy must be a number and a unit"},
		{"retention with a space", func(c *v1.Cluster) { c.Spec.Backup.RetentionPolicy = "30 d" }, "retentionPolicy must be a number and a unit"},
		{"unknown backup target", func(c *v1.Cluster) { c.Spec.Backup.Target = "standby" }, `spec.backup.target: Unsupported value: "standby"`},
		{"unknown compression", func(c *v1.Cluster) {
			c.Spec.Backup.Repository.Wal = &v1.WalBackupConfiguration{Compression: "bzip2"}
		}, `spec.backup.repository.wal.compression: Unsupported value: "bzip2"`},
		{"destination not a URL", func(c *v1.Cluster) { c.Spec.Backup.Repository.DestinationPath = "bucket/prefix" }, "destinationPath must be a repository URL such as s3://bucket/prefix or file:///path"},
		{"s3 credentials for a file repository", func(c *v1.Cluster) { c.Spec.Backup.Repository.DestinationPath = "file:///backups" }, "s3Credentials apply only to an s3:// destinationPath"},
		{"credentials from Secrets and IAM role", func(c *v1.Cluster) {
			c.Spec.Backup.Repository.S3Credentials.InheritFromIAMRole = true
		}, "s3Credentials: use either inheritFromIAMRole: true or accessKeyId/secretAccessKey from a Secret, not both"},
		{"credentials with half a key", func(c *v1.Cluster) {
			c.Spec.Backup.Repository.S3Credentials = &v1.S3Credentials{AccessKeyID: secret("s3", "id")}
		}, "s3Credentials needs accessKeyId and secretAccessKey"},
		{"empty credentials", func(c *v1.Cluster) { c.Spec.Backup.Repository.S3Credentials = &v1.S3Credentials{} }, "s3Credentials needs accessKeyId and secretAccessKey"},
		{"replica source not an external cluster", func(c *v1.Cluster) { replica(c, "elsewhere") }, "replica.source must name an entry of externalClusters"},
		{"replica without source", func(c *v1.Cluster) { replica(c, "") }, "spec.replica.source"},
		{"replica bootstrapped with initdb", func(c *v1.Cluster) {
			replica(c, "origin")
			c.Spec.Bootstrap = &v1.BootstrapConfiguration{InitDB: &v1.BootstrapInitDB{}}
		}, "a replica cluster (replica.enabled: true) starts from its source"},
		{"promotion token for another cluster", func(c *v1.Cluster) {
			replica(c, "origin")
			c.Spec.Replica.PromotionToken = "token"
			c.Spec.Replica.Primary = "origin"
		}, "replica.promotionToken is only used to promote this cluster"},
		{"external cluster with neither connection nor repository", func(c *v1.Cluster) {
			c.Spec.ExternalClusters = append(c.Spec.ExternalClusters, v1.ExternalCluster{Name: "empty"})
		}, "an externalClusters entry needs connectionParameters"},
		{"two external clusters of one name", func(c *v1.Cluster) {
			c.Spec.ExternalClusters = append(c.Spec.ExternalClusters, c.Spec.ExternalClusters[0])
		}, "spec.externalClusters[1]: Duplicate value"},
		{"storage size not a quantity", func(c *v1.Cluster) { c.Spec.Storage.Size = "ten gigs" }, "storage.size must be a positive quantity such as 10Gi or 500Mi"},
		{"storage size zero", func(c *v1.Cluster) { c.Spec.Storage.Size = "0" }, "storage.size must be a positive quantity"},
		{"archive_command among the parameters", func(c *v1.Cluster) {
			c.Spec.PostgresQL.Parameters = map[string]string{"work_mem": "64MB", "archive_command": "/bin/true"}
		}, "postgresql.parameters must not set archive_mode, archive_command"},
		{"ssl among the parameters", func(c *v1.Cluster) {
			c.Spec.PostgresQL.Parameters = map[string]string{"ssl": "off"}
		}, "postgresql.parameters must not set archive_mode, archive_command"},
		{"wal_level minimal", func(c *v1.Cluster) {
			c.Spec.PostgresQL.Parameters = map[string]string{"wal_level": "minimal"}
		}, "wal_level must be replica (the default) or logical"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster(ns, "c"+strconv.Itoa(i))
			tc.mutate(c)
			err := env.Client.Create(ctx(t), c)
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not contain %q:\n%v", tc.want, err)
			}
		})
	}
}

func TestImmutableFieldsStay(t *testing.T) {
	ns := env.Namespace(t)
	cases := []struct {
		name   string
		mutate func(c *v1.Cluster)
		want   string // empty: the update is accepted
	}{
		{"more instances", func(c *v1.Cluster) { c.Spec.Instances = 5 }, ""},
		{"bigger volumes", func(c *v1.Cluster) { c.Spec.Storage.Size = "2Gi" }, ""},
		{"another retention", func(c *v1.Cluster) { c.Spec.Backup.RetentionPolicy = "6m" }, ""},
		{"another bootstrap database", func(c *v1.Cluster) { c.Spec.Bootstrap.InitDB.Database = "other" }, "bootstrap cannot change after the Cluster is created"},
		{"another bootstrap method", func(c *v1.Cluster) {
			c.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: &v1.BootstrapRecovery{Source: "origin"}}
		}, "bootstrap cannot change after the Cluster is created"},
		// Removing it brings back the default (initdb of app), which differs.
		{"bootstrap removed", func(c *v1.Cluster) { c.Spec.Bootstrap = nil }, "bootstrap cannot change after the Cluster is created"},
		{"another storage class", func(c *v1.Cluster) { c.Spec.Storage.StorageClass = ptr.To("fast") }, "storage.storageClass cannot change once set"},
		{"storage class removed", func(c *v1.Cluster) { c.Spec.Storage.StorageClass = nil }, "storage.storageClass cannot change once set"},
		{"smaller volumes", func(c *v1.Cluster) { c.Spec.Storage.Size = "512Mi" }, "storage.size cannot shrink"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster(ns, "u"+strconv.Itoa(i))
			if err := env.Client.Create(ctx(t), c); err != nil {
				t.Fatal(err)
			}
			tc.mutate(c)
			err := env.Client.Update(ctx(t), c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("update rejected: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("update accepted; want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error does not contain %q:\n%v", tc.want, err)
			}
		})
	}
}

func TestStorageClassCanBeSetOnce(t *testing.T) {
	ns := env.Namespace(t)
	c := validCluster(ns, "late-class")
	c.Spec.Storage.StorageClass = nil
	if err := env.Client.Create(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	c.Spec.Storage.StorageClass = ptr.To("fast")
	if err := env.Client.Update(ctx(t), c); err != nil {
		t.Fatalf("setting storageClass the first time was rejected: %v", err)
	}
}
