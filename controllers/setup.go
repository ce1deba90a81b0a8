package controllers

import (
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Setup registers every controller of the operator with mgr.
func Setup(mgr ctrl.Manager, clk clock.PassiveClock) error {
	return (&ScheduledBackupReconciler{
		Client:   mgr.GetClient(),
		Live:     mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("walship-scheduledbackup"),
		Clock:    clk,
	}).SetupWithManager(mgr)
}
