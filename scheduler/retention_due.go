package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage"
)

// RetentionInterval is how often the operator applies a cluster's
// retention policy: often enough that expired backups go within the hour,
// rarely enough that listing a large repository stays cheap.
const RetentionInterval = time.Hour

// ClusterPolicy is the Policy of a Cluster's spec.backup.retentionPolicy
// ("30d", "4w", "6m") at now. The operator's retention is always a recovery
// window, as in CloudNativePG.
func ClusterPolicy(retentionPolicy string, now time.Time) (Policy, error) {
	w, err := ParseWindow(retentionPolicy)
	if err != nil {
		return Policy{}, fmt.Errorf("retentionPolicy %w", err)
	}
	return Policy{Window: w, IncompleteGrace: DefaultIncompleteGrace, Now: now}, nil
}

// RetentionDue says whether a cluster whose retention last ran at last
// (zero: never) is due at now, and when the next run is.
func RetentionDue(last, now time.Time) (due bool, next time.Time) {
	if last.IsZero() || !now.Before(last.Add(RetentionInterval)) {
		return true, now.Add(RetentionInterval)
	}
	return false, last.Add(RetentionInterval)
}

// PlanClusterRetention is what a cluster's retention policy deletes from
// its repository at now: the same plan `walship retention` makes.
func PlanClusterRetention(ctx context.Context, st storage.Store, dec *codec.Decoder, retentionPolicy string, now time.Time) (*Plan, error) {
	p, err := ClusterPolicy(retentionPolicy, now)
	if err != nil {
		return nil, err
	}
	return PlanRetention(ctx, st, dec, p)
}
