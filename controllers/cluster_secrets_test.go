package controllers

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	apiv1 "github.com/walship/walship/api/v1"
)

// secretsRig is a namespace and a Cluster in it, created through the API
// server (so its defaults apply and it has a UID).
type secretsRig struct {
	t   *testing.T
	ctx context.Context
	ns  string
}

func newSecretsRig(t *testing.T) *secretsRig {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &secretsRig{t: t, ctx: ctx, ns: env.Namespace(t)}
}

func (g *secretsRig) cluster(name string, mutate ...func(*apiv1.Cluster)) *apiv1.Cluster {
	g.t.Helper()
	c := &apiv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: name},
		Spec:       apiv1.ClusterSpec{Storage: apiv1.StorageConfiguration{Size: "1Gi"}},
	}
	for _, m := range mutate {
		m(c)
	}
	if err := env.Client.Create(g.ctx, c); err != nil {
		g.t.Fatalf("creating cluster %s: %v", name, err)
	}
	return c
}

func (g *secretsRig) secret(name string) *corev1.Secret {
	g.t.Helper()
	var s corev1.Secret
	if err := env.Client.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: name}, &s); err != nil {
		g.t.Fatalf("getting Secret %s: %v", name, err)
	}
	return &s
}

func (g *secretsRig) absent(name string) {
	g.t.Helper()
	var s corev1.Secret
	err := env.Client.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: name}, &s)
	if !apierrors.IsNotFound(err) {
		g.t.Fatalf("Secret %s: want none, got err=%v", name, err)
	}
}

func (g *secretsRig) userSecret(name string, data map[string]string) *corev1.Secret {
	g.t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: name},
		Type:       corev1.SecretTypeOpaque,
		StringData: data,
	}
	if err := env.Client.Create(g.ctx, s); err != nil {
		g.t.Fatal(err)
	}
	return g.secret(name)
}

func (g *secretsRig) ensure(c *apiv1.Cluster) {
	g.t.Helper()
	if err := EnsureSecrets(g.ctx, env.Client, c); err != nil {
		g.t.Fatalf("EnsureSecrets: %v", err)
	}
}

// ensureFails expects EnsureSecrets to fail with a SecretError of reason,
// whose message has all of want.
func (g *secretsRig) ensureFails(c *apiv1.Cluster, reason string, want ...string) {
	g.t.Helper()
	err := EnsureSecrets(g.ctx, env.Client, c)
	if err == nil {
		g.t.Fatalf("EnsureSecrets succeeded, want an error with %q", want)
	}
	var se *SecretError
	if !errors.As(err, &se) || se.Reason != reason {
		g.t.Fatalf("EnsureSecrets: %v, want a SecretError of reason %s", err, reason)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			g.t.Fatalf("EnsureSecrets: %q, want it to say %q", err, w)
		}
	}
}

// checkGenerated checks a generated credential Secret of cluster c for user
// and database, and returns its password.
func checkGenerated(t *testing.T, s *corev1.Secret, c *apiv1.Cluster, user, database string) string {
	t.Helper()
	if s.Type != corev1.SecretTypeBasicAuth {
		t.Errorf("%s: type %s, want %s", s.Name, s.Type, corev1.SecretTypeBasicAuth)
	}
	if got := s.Labels[ClusterLabel]; got != c.Name {
		t.Errorf("%s: label %s=%q, want %q", s.Name, ClusterLabel, got, c.Name)
	}
	if len(s.OwnerReferences) != 1 || !metav1.IsControlledBy(s, c) ||
		s.OwnerReferences[0].Kind != "Cluster" || s.OwnerReferences[0].APIVersion != apiv1.GroupVersion.String() {
		t.Errorf("%s: owner references %+v, want the Cluster %s (uid %s) as controller", s.Name, s.OwnerReferences, c.Name, c.UID)
	}
	d := func(k string) string { return string(s.Data[k]) }
	password := d(SecretPasswordKey)
	if len(password) != PasswordLength || strings.Trim(password, passwordAlphabet) != "" {
		t.Errorf("%s: password %q: want %d URL-safe characters", s.Name, password, PasswordLength)
	}
	host := c.Name + "-rw"
	for k, want := range map[string]string{
		SecretUsernameKey: user,
		SecretDBNameKey:   database,
		SecretHostKey:     host,
		SecretPortKey:     "5432",
		SecretPgpassKey:   host + ":5432:*:" + user + ":" + password + "\n",
	} {
		if got := d(k); got != want {
			t.Errorf("%s: %s = %q, want %q", s.Name, k, got, want)
		}
	}
	u, err := url.Parse(d(SecretURIKey))
	if err != nil {
		t.Fatalf("%s: uri %q: %v", s.Name, d(SecretURIKey), err)
	}
	p, _ := u.User.Password()
	if u.Scheme != "postgresql" || u.User.Username() != user || p != password ||
		u.Host != host+"."+c.Namespace+":5432" || u.Path != "/"+database {
		t.Errorf("%s: uri %q: want postgresql://%s:<password>@%s.%s:5432/%s", s.Name, d(SecretURIKey), user, host, c.Namespace, database)
	}
	if len(s.Data) != 7 {
		t.Errorf("%s: keys %v, want 7", s.Name, keys(s.Data))
	}
	return password
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSecretsAppGeneratedOnce(t *testing.T) {
	g := newSecretsRig(t)
	c := g.cluster("pg") // default bootstrap: initdb of app owned by app
	g.ensure(c)
	password := checkGenerated(t, g.secret("pg-app"), c, "app", "app")
	g.absent("pg-superuser")

	// A second pass, as after every reconcile or a restart, changes nothing.
	g.ensure(c)
	s := g.secret("pg-app")
	if got := string(s.Data[SecretPasswordKey]); got != password {
		t.Fatalf("second EnsureSecrets changed the password")
	}
	checkGenerated(t, s, c, "app", "app")
}

func TestSecretsInitDBOwnerAndDatabase(t *testing.T) {
	g := newSecretsRig(t)
	c := g.cluster("shop", func(c *apiv1.Cluster) {
		c.Spec.Bootstrap = &apiv1.BootstrapConfiguration{InitDB: &apiv1.BootstrapInitDB{Database: "orders", Owner: "clerk"}}
	})
	g.ensure(c)
	checkGenerated(t, g.secret("shop-app"), c, "clerk", "orders")
}

func TestSecretsSuperuserOnlyWhenEnabled(t *testing.T) {
	g := newSecretsRig(t)
	off := g.cluster("off", func(c *apiv1.Cluster) { c.Spec.EnableSuperuserAccess = ptr.To(false) })
	g.ensure(off)
	g.absent("off-superuser")

	on := g.cluster("on", func(c *apiv1.Cluster) { c.Spec.EnableSuperuserAccess = ptr.To(true) })
	g.ensure(on)
	su := checkGenerated(t, g.secret("on-superuser"), on, "postgres", "postgres")
	app := checkGenerated(t, g.secret("on-app"), on, "app", "app")
	if su == app {
		t.Fatal("the superuser and the app user got the same password")
	}
	g.ensure(on)
	if got := string(g.secret("on-superuser").Data[SecretPasswordKey]); got != su {
		t.Fatal("second EnsureSecrets changed the superuser password")
	}
}

func TestSecretsUserSuppliedInitDBSecret(t *testing.T) {
	g := newSecretsRig(t)
	c := g.cluster("pg", func(c *apiv1.Cluster) {
		c.Spec.Bootstrap = &apiv1.BootstrapConfiguration{InitDB: &apiv1.BootstrapInitDB{
			Database: "app", Owner: "app", Secret: &apiv1.LocalObjectReference{Name: "mine"}}}
	})

	// Missing: an error naming the Secret and the field; nothing generated.
	g.ensureFails(c, ReasonSecretNotFound, g.ns+"/mine", "spec.bootstrap.initdb.secret", "does not exist")
	g.absent("pg-app")

	// Without a password: an error naming the Secret and the key.
	g.userSecret("mine", map[string]string{"username": "app"})
	g.ensureFails(c, ReasonSecretKeyMissing, g.ns+"/mine", "key password")
	g.absent("pg-app")

	// Complete: accepted as it is, and still no pg-app.
	s := g.secret("mine")
	s.StringData = map[string]string{"password": "chosen"}
	if err := env.Client.Update(g.ctx, s); err != nil {
		t.Fatal(err)
	}
	g.ensure(c)
	g.absent("pg-app")
	s = g.secret("mine")
	if string(s.Data["password"]) != "chosen" || len(s.OwnerReferences) != 0 || len(s.Labels) != 0 {
		t.Fatalf("the user's Secret was changed: %+v", s)
	}
}

func TestSecretsUserSuppliedSuperuserSecret(t *testing.T) {
	g := newSecretsRig(t)
	c := g.cluster("pg", func(c *apiv1.Cluster) {
		c.Spec.EnableSuperuserAccess = ptr.To(true)
		c.Spec.SuperuserSecret = &apiv1.LocalObjectReference{Name: "root"}
	})
	g.ensureFails(c, ReasonSecretNotFound, g.ns+"/root", "spec.superuserSecret")
	g.absent("pg-superuser")

	g.userSecret("root", map[string]string{"password": "x"})
	g.ensureFails(c, ReasonSecretKeyMissing, g.ns+"/root", "key username")

	s := g.secret("root")
	s.StringData = map[string]string{"username": "postgres"}
	if err := env.Client.Update(g.ctx, s); err != nil {
		t.Fatal(err)
	}
	g.ensure(c)
	g.absent("pg-superuser")
	checkGenerated(t, g.secret("pg-app"), c, "app", "app")
}

func TestSecretsForeignSecretNotAdopted(t *testing.T) {
	g := newSecretsRig(t)
	foreign := g.userSecret("pg-app", map[string]string{"username": "someone", "password": "theirs"})
	c := g.cluster("pg", func(c *apiv1.Cluster) { c.Spec.EnableSuperuserAccess = ptr.To(true) })

	g.ensureFails(c, ReasonSecretNotOwned, g.ns+"/pg-app", "not created by Cluster pg")
	s := g.secret("pg-app")
	if s.ResourceVersion != foreign.ResourceVersion || len(s.OwnerReferences) != 0 || string(s.Data["password"]) != "theirs" {
		t.Fatalf("the foreign Secret was changed: %+v", s)
	}
	// The other Secret is still made.
	checkGenerated(t, g.secret("pg-superuser"), c, "postgres", "postgres")

	// A Secret of an earlier Cluster of the same name (another UID) is not
	// this Cluster's either.
	old := &apiv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: "pg", UID: "not-the-same"}}
	if err := EnsureSecrets(g.ctx, env.Client, old); err == nil {
		t.Fatal("a Cluster of another UID took over pg-superuser")
	}
}

func TestDesiredSecretsPure(t *testing.T) {
	c := &apiv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", UID: "u1"}}
	got, err := DesiredSecrets(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "db-app" || got[0].StringData[SecretUsernameKey] != "app" {
		t.Fatalf("no bootstrap, no superuser: %+v", got)
	}
	c.Spec.EnableSuperuserAccess = ptr.To(true)
	c.Spec.Bootstrap = &apiv1.BootstrapConfiguration{InitDB: &apiv1.BootstrapInitDB{Secret: &apiv1.LocalObjectReference{Name: "x"}}}
	got, err = DesiredSecrets(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "db-superuser" {
		t.Fatalf("user app secret, superuser on: %+v", got)
	}
	a, _ := GeneratePassword()
	b, _ := GeneratePassword()
	if a == b {
		t.Fatal("two passwords alike")
	}
	if line := PgpassLine("h", 5432, "*", `u:\`, "p"); line != `h:5432:*:u\:\\:p`+"\n" {
		t.Fatalf("PgpassLine escaping: %q", line)
	}
}
