package v1_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/walship/walship/api/v1"
	"github.com/walship/walship/scheduler"
)

func scheduled(ns, name, schedule string) *v1.ScheduledBackup {
	return &v1.ScheduledBackup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1.ScheduledBackupSpec{Cluster: v1.ClusterReference{Name: "pg"}, Schedule: schedule},
	}
}

func TestScheduledBackupAdmission(t *testing.T) {
	ns := env.Namespace(t)
	for i, s := range []string{"0 3 * * *", "0 0 3 * * *", "*/15 1-5 * JAN-MAR mon-fri", "0 3 1,15 * ?", "@daily", "@every 6h", " 0 3 * * * "} {
		if err := env.Client.Create(ctx(t), scheduled(ns, "ok-"+string(rune('a'+i)), s)); err != nil {
			t.Errorf("schedule %q refused: %v", s, err)
		}
	}
	for _, c := range []struct{ name, schedule, want string }{
		{"empty", "", "spec.schedule in body should be at least 1 chars long"},
		{"four-fields", "0 3 * *", "schedule is not valid cron"},
		{"seconds-star", "* 0 3 * * *", "6 fields need a leading seconds field that is one number"},
		{"minute-61", "61 3 * * *", "minutes 0-59"},
		{"hour-24", "0 24 * * *", "hours 0-23"},
		{"sunday-7", "0 3 * * 7", "days of the week 0-6"},
		{"time-zone", "CRON_TZ=Europe/Paris 0 3 * * *", "in UTC"},
		{"both-days", "0 3 1 * MON", "cron runs when EITHER matches"},
		{"both-days-6", "0 0 3 1-7 * 1", "cron runs when EITHER matches"},
		{"a-name-that-is-far-too-long-for-the-backup-names-it-makes", "@daily", "at most 48 characters"},
	} {
		err := env.Client.Create(ctx(t), scheduled(ns, c.name, c.schedule))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s (%q): %v; want an error containing %q", c.name, c.schedule, err, c.want)
		}
	}

	sb := scheduled(ns, "moving", "@daily")
	if err := env.Client.Create(ctx(t), sb); err != nil {
		t.Fatal(err)
	}
	sb.Spec.Cluster.Name = "another"
	if err := env.Client.Update(ctx(t), sb); err == nil || !strings.Contains(err.Error(), "cluster cannot change") {
		t.Errorf("changing the cluster: %v", err)
	}
	sb.Spec.Cluster.Name = "pg"
	sb.Spec.BackupOwnerReference = "everyone"
	if err := env.Client.Update(ctx(t), sb); err == nil || !strings.Contains(err.Error(), `supported values: "none", "self", "cluster"`) {
		t.Errorf("an unknown backupOwnerReference: %v", err)
	}
}

func TestBackupSpecIsImmutable(t *testing.T) {
	ns := env.Namespace(t)
	b := &v1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"}, Spec: v1.BackupSpec{Cluster: v1.ClusterReference{Name: "pg"}}}
	if err := env.Client.Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	if b.Spec.Method != v1.BackupMethodWalship {
		t.Errorf("method defaults to %q", b.Spec.Method)
	}
	b.Spec.Target = v1.BackupTargetPrimary
	if err := env.Client.Update(ctx(t), b); err == nil || !strings.Contains(err.Error(), "a Backup's spec cannot change") {
		t.Errorf("changing a Backup's spec: %v", err)
	}
	bad := &v1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: v1.BackupSpec{Cluster: v1.ClusterReference{Name: "pg"}, Method: "pg_dump"}}
	if err := env.Client.Create(ctx(t), bad); err == nil || !strings.Contains(err.Error(), `supported values: "walship"`) {
		t.Errorf("an unknown method: %v", err)
	}
}

// The admission rules are patterns; scheduler.ParseSchedule is what the
// controller runs. Whatever the parser accepts, admission must accept too,
// and the malformed fields below must be caught at admission already.
func TestScheduleRulesAgreeWithTheParser(t *testing.T) {
	crd, err := os.ReadFile(filepath.Join(env.Root, "config", "crd", "bases", "postgresql.walship.io_scheduledbackups.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Spec struct {
								Properties struct {
									Schedule struct {
										Rules []struct{ Rule string } `json:"x-kubernetes-validations"`
									} `json:"schedule"`
								} `json:"properties"`
							} `json:"spec"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(crd, &doc); err != nil || len(doc.Spec.Versions) != 1 {
		t.Fatalf("reading the CRD: %v", err)
	}
	var must, mustNot []*regexp.Regexp
	for _, r := range doc.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Spec.Properties.Schedule.Rules {
		m := regexp.MustCompile(`^(!?)self\.matches\('([^']*)'\)$`).FindStringSubmatch(r.Rule)
		if m == nil {
			t.Fatalf("unexpected rule %s", r.Rule)
		}
		re := regexp.MustCompile(m[2])
		if m[1] == "!" {
			mustNot = append(mustNot, re)
		} else {
			must = append(must, re)
		}
	}
	if len(must) != 1 || len(mustNot) != 1 {
		t.Fatalf("found %d matches and %d !matches rules in the CRD, want 1 and 1", len(must), len(mustNot))
	}
	admits := func(s string) bool { return must[0].MatchString(s) && !mustNot[0].MatchString(s) }

	accepted := []string{
		"0 3 * * *", "*/5 * * * *", "0 0 3 * * *", "59 59 23 31 12 *", "0 0 * * 0-6", "5,10,15 */2 * * *",
		"0 3 * * SUN", "0 3 * jan-dec/2 *", "0 3 ? * 1", "0 3 15 * ?", "@yearly", "@annually", "@monthly",
		"@weekly", "@daily", "@midnight", "@hourly", "@every 1h30m", "@every 90s", "  0   3  *  *  *  ",
		"0 0 1 1 *", "30 2 * * 1-5/2", "0-59/10 * * * *",
	}
	for _, s := range accepted {
		if _, err := scheduler.ParseSchedule(s); err != nil {
			t.Errorf("parser refuses %q: %v", s, err)
		}
		if !admits(s) {
			t.Errorf("admission refuses %q, which the parser accepts", s)
		}
	}
	for _, s := range []string{
		"", "0 3 * *", "0 0 0 3 * * *", "* 0 3 * * *", "*/5 * * * * *", "60 3 * * *", "0 24 * * *", "0 3 0 * *",
		"0 3 32 * *", "0 3 * 13 *", "0 3 * * 7", "*/0 * * * *", "0 3 1 * MON", "0 3 * ? *", "@fortnightly",
		"CRON_TZ=UTC 0 3 * * *", "0 3 * * FUNDAY", "0 3 * * ? 2026",
	} {
		if admits(s) {
			t.Errorf("admission accepts %q", s)
		}
		if _, err := scheduler.ParseSchedule(s); err == nil {
			t.Errorf("parser accepts %q", s)
		}
	}
	// What only the parser sees: admitted, then refused by the controller.
	for _, s := range []string{"0 3 30 2 *", "50-10 3 * * *", "@every 30s"} {
		if !admits(s) {
			t.Errorf("admission refuses %q (fine, but update this test)", s)
		}
		if _, err := scheduler.ParseSchedule(s); err == nil {
			t.Errorf("parser accepts %q", s)
		}
	}
}
