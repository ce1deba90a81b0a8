package scheduler

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/codec"
)

func TestClusterRetention(t *testing.T) {
	r := newRepo(t)
	r.wal(1, 1, 10)
	day := 24 * time.Hour
	r.backup("20260301T000000Z", 1, 1, 1, now.Add(-260*day))
	r.backup("20260701T000000Z", 1, 3, 3, now.Add(-140*day))
	r.backup("20261001T000000Z", 1, 5, 5, now.Add(-50*day))
	r.backup("20261125T000000Z", 1, 7, 7, now.Add(-time.Hour))
	for _, c := range []struct{ policy, expired string }{
		{"12m", ""},
		{"6m", ""}, // the backup of 260 days ago is the newest that reaches 186 days back
		{"3m", "20260301T000000Z"},
		{"4w", "20260301T000000Z 20260701T000000Z"},
		{"30d", "20260301T000000Z 20260701T000000Z"},
		{"1d", "20260301T000000Z 20260701T000000Z"},
	} {
		pl, err := PlanClusterRetention(context.Background(), r.st, &codec.Decoder{}, c.policy, now)
		if err != nil {
			t.Fatalf("%s: %v", c.policy, err)
		}
		if got := ids(pl.Expired); got != c.expired {
			t.Errorf("retentionPolicy %s: expired %q, want %q", c.policy, got, c.expired)
		}
		if slices.Contains(strings.Fields(ids(pl.Expired)), "20261125T000000Z") {
			t.Errorf("%s: the newest backup expired", c.policy)
		}
	}
	if _, err := PlanClusterRetention(context.Background(), r.st, &codec.Decoder{}, "30 days", now); err == nil || !strings.Contains(err.Error(), "30d") {
		t.Errorf("a malformed policy: %v", err)
	}
}

func TestRetentionDue(t *testing.T) {
	if due, next := RetentionDue(time.Time{}, now); !due || !next.Equal(now.Add(time.Hour)) {
		t.Errorf("never ran: %v %s", due, next)
	}
	if due, next := RetentionDue(now.Add(-10*time.Minute), now); due || !next.Equal(now.Add(50*time.Minute)) {
		t.Errorf("ran 10 minutes ago: %v %s", due, next)
	}
	if due, _ := RetentionDue(now.Add(-time.Hour), now); !due {
		t.Error("ran an hour ago: not due")
	}
}
