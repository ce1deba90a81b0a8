package v1

// Condition types of a Cluster's status.
const (
	// ConditionReady is true when every instance is ready.
	ConditionReady = "Ready"
	// ConditionContinuousArchiving is true while WAL reaches the repository.
	ConditionContinuousArchiving = "ContinuousArchiving"
	// ConditionLastBackupSucceeded is false when the last backup failed.
	ConditionLastBackupSucceeded = "LastBackupSucceeded"
)

// IsReplica reports whether the Cluster follows another cluster: replica.enabled
// is true, or replica.primary names another cluster.
func (c *Cluster) IsReplica() bool {
	r := c.Spec.Replica
	if r == nil {
		return false
	}
	if r.Primary != "" {
		return r.Primary != c.Name
	}
	return r.Enabled != nil && *r.Enabled
}

// ExternalCluster returns the externalClusters entry with this name.
func (s *ClusterSpec) ExternalCluster(name string) (ExternalCluster, bool) {
	for _, e := range s.ExternalClusters {
		if e.Name == name {
			return e, true
		}
	}
	return ExternalCluster{}, false
}
