package v1_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/walship/walship/instance/pgconf"
)

// TestControlledParametersMatchTheCRD: the CEL rule that refuses
// postgresql.parameters at admission names exactly the parameters the
// instance manager controls (instance/pgconf.Controlled), so the two never
// drift: a Cluster the API server accepts renders, and one it would
// render is accepted.
func TestControlledParametersMatchTheCRD(t *testing.T) {
	src, err := os.ReadFile("cluster_types.go")
	if err != nil {
		t.Fatal(err)
	}
	rule := regexp.MustCompile(`XValidation:rule="!self\.exists\(k, k in \[([^\]]*)\]\)"`)
	m := rule.FindAllSubmatch(src, -1)
	if len(m) != 1 {
		t.Fatalf("found %d rules of the form !self.exists(k, k in [...]) in cluster_types.go, want 1", len(m))
	}
	var crd []string
	for _, q := range strings.Split(string(m[0][1]), ",") {
		crd = append(crd, strings.Trim(strings.TrimSpace(q), "'"))
	}
	want := slices.Clone(pgconf.Controlled)
	slices.Sort(crd)
	slices.Sort(want)
	if !slices.Equal(crd, want) {
		t.Errorf("the CRD's rule refuses\n  %v\nthe instance manager controls\n  %v", crd, want)
	}
	for _, p := range pgconf.Controlled {
		if !strings.Contains(string(m[0][0]), "'"+p+"'") {
			t.Errorf("%s is missing from the rule", p)
		}
	}
}
