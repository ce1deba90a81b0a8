package v1_test

import (
	"os"
	"testing"

	"github.com/walship/walship/internal/kubetest"
)

// env is the kube-apiserver (with etcd) every test of this package uses; each
// test works in a namespace of its own (env.Namespace).
var env *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }
