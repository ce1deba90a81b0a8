package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	apiv1 "github.com/walship/walship/api/v1"
	"github.com/walship/walship/controllers"
)

func operatorCmd() *cobra.Command {
	var (
		kubeconfig, metricsAddr, probeAddr, namespace string
		leaderElect                                   bool
	)
	cmd := &cobra.Command{
		Use:   "operator [flags]",
		Short: "Run the Kubernetes controllers (the operator's Deployment runs this)",
		Long: `Runs walship's controllers in one controller manager: today the
ScheduledBackup controller, which creates Backups on schedule.

It reads the cluster's configuration from inside a pod, or from --kubeconfig
(or $KUBECONFIG). With --leader-elect, only one of several replicas works at a
time; outside a pod, $WALSHIP_OPERATOR_NAMESPACE names the namespace of its
Lease. Metrics are served on --metrics-bind-address (/metrics), health on
--health-probe-bind-address (/healthz, /readyz).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Getenv("GOMEMLIMIT") == "" {
				// The 96 MiB limit is for archive_command; the operator's cache
				// grows with the objects it watches.
				debug.SetMemoryLimit(math.MaxInt64)
			}
			ctrl.SetLogger(zap.New(zap.UseDevMode(false)))
			cfg, err := kubeConfig(kubeconfig)
			if err != nil {
				return err
			}
			scheme := runtime.NewScheme()
			if err := clientgoscheme.AddToScheme(scheme); err != nil {
				return err
			}
			if err := apiv1.AddToScheme(scheme); err != nil {
				return err
			}
			opts := ctrl.Options{
				Scheme:                  scheme,
				Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
				HealthProbeBindAddress:  probeAddr,
				LeaderElection:          leaderElect,
				LeaderElectionID:        "walship-operator.postgresql.walship.io",
				LeaderElectionNamespace: os.Getenv("WALSHIP_OPERATOR_NAMESPACE"), // in a pod: its own (the Deployment sets it)
			}
			if namespace != "" {
				opts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}}
			}
			mgr, err := ctrl.NewManager(cfg, opts)
			if err != nil {
				return fmt.Errorf("starting the controller manager: %w", err)
			}
			if err := controllers.Setup(mgr, clock.RealClock{}); err != nil {
				return err
			}
			if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
				return err
			}
			if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
				return err
			}
			return mgr.Start(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else the pod's service account)")
	f.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint; 0 turns it off")
	f.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 turns them off")
	f.BoolVar(&leaderElect, "leader-elect", false, "elect one active replica through a Lease (the Deployment sets it)")
	f.StringVar(&namespace, "namespace", "", "watch only this namespace (default: all)")
	return cmd
}

// kubeConfig reads the API server's address and credentials.
func kubeConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := ctrl.GetConfig()
		if err != nil {
			return nil, fmt.Errorf("no Kubernetes configuration: not in a pod, and no --kubeconfig or $KUBECONFIG (%w)", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
