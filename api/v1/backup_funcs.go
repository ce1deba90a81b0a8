package v1

// Done says whether the backup has finished, well or badly.
func (b *Backup) Done() bool {
	return b.Status.Phase == BackupPhaseCompleted || b.Status.Phase == BackupPhaseFailed
}
