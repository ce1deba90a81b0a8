// Package kubetest runs a real Kubernetes control plane (etcd and
// kube-apiserver, through controller-runtime's envtest) for the API and
// controller tests, with walship's CRDs installed.
//
// One control plane per test package, started in TestMain; each test works in
// a namespace of its own:
//
//	var env *kubetest.Env
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }
//
//	func TestSomething(t *testing.T) {
//		ns := env.Namespace(t)
//		...env.Client.Create(ctx, obj)...
//	}
//
// The binaries come from $KUBEBUILDER_ASSETS, else from
// <module root>/bin/kube-<version> as scripts/ensure-kube.sh builds them
// (`make tools`). When they are missing the tests fail: they are not skipped.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	walshipv1 "github.com/walship/walship/api/v1"
)

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a controller-runtime client (no cache) whose Scheme knows
	// client-go's types and walship's api/v1.
	Client client.Client
	// Scheme is Client's scheme.
	Scheme *runtime.Scheme
	// Root is the module root (the folder of go.mod).
	Root string
	// Assets is the folder of the etcd and kube-apiserver binaries in use.
	Assets string

	env *envtest.Environment
}

// Start starts etcd and kube-apiserver and installs the CRDs of
// config/crd/bases. Call Stop when done.
func Start() (*Env, error) {
	// envtest logs through controller-runtime's logger; without one it
	// prints a stack trace saying so. The tests report what matters.
	ctrllog.SetLogger(logr.Discard())
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir(root)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := walshipv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
		// Two cores shared with PostgreSQL and MinIO tests: be patient.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// envtest prefers KUBEBUILDER_ASSETS over BinaryAssetsDirectory; AssetsDir
	// already chose, so make them agree.
	if err := os.Setenv("KUBEBUILDER_ASSETS", assets); err != nil {
		return nil, err
	}
	start := time.Now()
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "kubetest: control plane from %s up in %s at %s\n",
		assets, time.Since(start).Round(10*time.Millisecond), cfg.Host)
	return &Env{Config: cfg, Client: c, Scheme: scheme, Root: root, Assets: assets, env: te}, nil
}

// Stop stops the control plane and removes its data.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// Main starts the control plane into *env, runs the package's tests and stops
// it; it returns the exit code for os.Exit. A control plane that does not start
// fails the package with a message saying how to get the binaries.
func Main(m *testing.M, env **Env) int {
	e, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: stopping the control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Namespace creates a namespace of its own for the test (named after it) and
// returns its name. Namespaces are not deleted: envtest runs no namespace
// controller, and the control plane goes away with the package.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: nsPrefix(t.Name())}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// nsPrefix turns a test name into a namespace name prefix: lower case, '-'
// for anything else, short enough to leave room for the random suffix.
func nsPrefix(name string) string {
	p := notDNS.ReplaceAllString(strings.ToLower(name), "-")
	if len(p) > 50 {
		p = p[:50]
	}
	for len(p) > 0 && p[0] == '-' {
		p = p[1:]
	}
	for len(p) > 0 && p[len(p)-1] == '-' {
		p = p[:len(p)-1]
	}
	if p == "" {
		p = "test"
	}
	return p + "-"
}

// ModuleRoot is the folder of go.mod above the working directory (go test
// runs a package's tests in its folder).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binaries the control plane needs in the assets folder.
var binaries = []string{"etcd", "kube-apiserver"}

// AssetsDir is the folder of the control plane binaries: $KUBEBUILDER_ASSETS,
// else <root>/bin/kube-<version> with the version scripts/ensure-kube.sh pins.
func AssetsDir(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	from := "KUBEBUILDER_ASSETS"
	if dir == "" {
		script, err := os.ReadFile(filepath.Join(root, "scripts", "ensure-kube.sh"))
		if err != nil {
			return "", err
		}
		m := regexp.MustCompile(`(?m)^KUBE_VER=(\S+)`).FindSubmatch(script)
		if m == nil {
			return "", errors.New("kubetest: no KUBE_VER= line in scripts/ensure-kube.sh")
		}
		dir = filepath.Join(root, "bin", "kube-"+string(m[1]))
		from = "scripts/ensure-kube.sh's cache"
	}
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("kubetest: %s is missing from %s (%s): run make tools, "+
				"or set KUBEBUILDER_ASSETS=$(bash scripts/ensure-kube.sh)", b, dir, from)
		}
	}
	return dir, nil
}
