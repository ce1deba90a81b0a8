package v1

import "time"

// IsSuspended says whether the schedule is suspended.
func (s *ScheduledBackup) IsSuspended() bool { return s.Spec.Suspend != nil && *s.Spec.Suspend }

// IsImmediate says whether a first backup is taken at creation.
func (s *ScheduledBackup) IsImmediate() bool { return s.Spec.Immediate != nil && *s.Spec.Immediate }

// BackupName is the name of the Backup that the schedule's run at `at`
// creates: the same for every retry of that run, so none creates two.
func (s *ScheduledBackup) BackupName(at time.Time) string {
	return s.Name + "-" + at.UTC().Format("20060102150405")
}
