package controllers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/walship/walship/api/v1"
)

// The credential Secrets of a Cluster.
//
// A Cluster gets <cluster>-app, for the application database's owner, unless
// its bootstrap names a Secret of its own, and <cluster>-superuser, for the
// postgres user, when enableSuperuserAccess is true and superuserSecret names
// none. Both are kubernetes.io/basic-auth Secrets with the keys below, labelled
// with ClusterLabel and controlled by the Cluster (deleting the Cluster
// deletes them). A password is generated once, when its Secret is created, and
// never changed by walship afterwards.

// Keys of a generated credential Secret.
const (
	SecretUsernameKey = corev1.BasicAuthUsernameKey // "username"
	SecretPasswordKey = corev1.BasicAuthPasswordKey // "password"
	SecretDBNameKey   = "dbname"
	SecretHostKey     = "host"
	SecretPortKey     = "port"
	// SecretPgpassKey is one line of a .pgpass file:
	// <cluster>-rw:5432:*:<user>:<password>.
	SecretPgpassKey = "pgpass"
	// SecretURIKey is postgresql://<user>:<password>@<cluster>-rw.<namespace>:5432/<dbname>.
	SecretURIKey = "uri"
)

const (
	// PostgresPort is the port PostgreSQL and the Cluster's Services listen on.
	PostgresPort = 5432
	// SuperuserName is the PostgreSQL superuser of every Cluster.
	SuperuserName = "postgres"
	// defaultAppName is the application database and its owner when the
	// bootstrap names none.
	defaultAppName = "app"
	// PasswordLength is the length of a generated password.
	PasswordLength = 64
)

// passwordAlphabet has 64 URL-safe characters, so one random byte's low six
// bits pick one without bias. None needs quoting in a .pgpass line.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// AppSecretName is the name of the Secret walship generates for the
// application database's owner.
func AppSecretName(c *apiv1.Cluster) string { return c.Name + "-app" }

// SuperuserSecretName is the name of the Secret walship generates for the
// postgres user.
func SuperuserSecretName(c *apiv1.Cluster) string { return c.Name + "-superuser" }

// RWServiceName is the Service that reaches the primary.
func RWServiceName(c *apiv1.Cluster) string { return c.Name + "-rw" }

// AppDatabase returns the application database, its owner and the Secret the
// user supplied for the owner (nil when walship generates <cluster>-app), from
// bootstrap.initdb or bootstrap.pg_basebackup, defaulting to app and app.
func AppDatabase(c *apiv1.Cluster) (database, owner string, secret *apiv1.LocalObjectReference) {
	database, owner = defaultAppName, defaultAppName
	if b := c.Spec.Bootstrap; b != nil {
		switch {
		case b.InitDB != nil:
			database, owner, secret = b.InitDB.Database, b.InitDB.Owner, b.InitDB.Secret
		case b.PgBaseBackup != nil:
			database, owner, secret = b.PgBaseBackup.Database, b.PgBaseBackup.Owner, b.PgBaseBackup.Secret
		}
	}
	if database == "" {
		database = defaultAppName
	}
	if owner == "" {
		owner = defaultAppName
	}
	if secret != nil && secret.Name == "" {
		secret = nil
	}
	return database, owner, secret
}

// superuserAccess reports whether spec.enableSuperuserAccess is true.
func superuserAccess(c *apiv1.Cluster) bool {
	return c.Spec.EnableSuperuserAccess != nil && *c.Spec.EnableSuperuserAccess
}

// DesiredSecrets returns the credential Secrets walship generates for the
// Cluster, each with a new random password: <cluster>-app unless the
// bootstrap names a Secret for the owner, and <cluster>-superuser when
// enableSuperuserAccess is true and superuserSecret is not set. The Secrets
// are controlled by the Cluster, which must therefore have its UID.
func DesiredSecrets(c *apiv1.Cluster) ([]*corev1.Secret, error) {
	var out []*corev1.Secret
	database, owner, userApp := AppDatabase(c)
	if userApp == nil {
		s, err := credentialSecret(c, AppSecretName(c), owner, database)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if superuserAccess(c) && (c.Spec.SuperuserSecret == nil || c.Spec.SuperuserSecret.Name == "") {
		s, err := credentialSecret(c, SuperuserSecretName(c), SuperuserName, SuperuserName)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// credentialSecret is a generated basic-auth Secret for user, whose uri
// connects to database.
func credentialSecret(c *apiv1.Cluster, name, user, database string) (*corev1.Secret, error) {
	password, err := GeneratePassword()
	if err != nil {
		return nil, err
	}
	host := RWServiceName(c)
	port := strconv.Itoa(PostgresPort)
	uri := url.URL{
		Scheme: "postgresql",
		User:   url.UserPassword(user, password),
		Host:   host + "." + c.Namespace + ":" + port,
		Path:   "/" + database,
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       c.Namespace,
			Name:            name,
			Labels:          map[string]string{ClusterLabel: c.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(c, apiv1.GroupVersion.WithKind("Cluster"))},
		},
		Type: corev1.SecretTypeBasicAuth,
		StringData: map[string]string{
			SecretUsernameKey: user,
			SecretPasswordKey: password,
			SecretDBNameKey:   database,
			SecretHostKey:     host,
			SecretPortKey:     port,
			SecretPgpassKey:   PgpassLine(host, PostgresPort, "*", user, password),
			SecretURIKey:      uri.String(),
		},
	}, nil
}

// PgpassLine is one line of a .pgpass file, newline included, with ':' and
// '\' escaped in each field as libpq expects.
func PgpassLine(host string, port int, database, user, password string) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	return strings.Join([]string{esc.Replace(host), strconv.Itoa(port), database, esc.Replace(user), esc.Replace(password)}, ":") + "\n"
}

// GeneratePassword returns PasswordLength characters of passwordAlphabet from
// crypto/rand.
func GeneratePassword() (string, error) {
	b := make([]byte, PasswordLength)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a password: %w", err)
	}
	for i := range b {
		b[i] = passwordAlphabet[b[i]&63]
	}
	return string(b), nil
}

// SecretError says what is wrong with one of a Cluster's credential Secrets;
// the Cluster controller reports it in a condition and an event.
type SecretError struct {
	// Secret is the namespace/name of the Secret.
	Secret string
	// Reason is a CamelCase word for a condition: SecretNotFound,
	// SecretKeyMissing, SecretNotOwned.
	Reason string
	// Message says what is wrong and what to do, naming the Secret.
	Message string
}

func (e *SecretError) Error() string { return e.Message }

// Reasons of a SecretError.
const (
	ReasonSecretNotFound   = "SecretNotFound"
	ReasonSecretKeyMissing = "SecretKeyMissing"
	ReasonSecretNotOwned   = "SecretNotOwned"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create

// EnsureSecrets creates the Cluster's missing credential Secrets
// (DesiredSecrets) and checks the ones the user supplied (superuserSecret,
// bootstrap.initdb.secret or bootstrap.pg_basebackup.secret): each must exist
// and have non-empty username and password keys.
//
// A generated Secret that already exists is left as it is, password included.
// A Secret with a generated Secret's name that this Cluster does not control
// (made by a user, say) is neither adopted nor changed: that is an error.
// Every problem found is returned, joined; each is a *SecretError.
func EnsureSecrets(ctx context.Context, c client.Client, cluster *apiv1.Cluster) error {
	var errs []error
	if ref := cluster.Spec.SuperuserSecret; ref != nil && ref.Name != "" {
		errs = append(errs, checkUserSecret(ctx, c, cluster.Namespace, ref.Name, "spec.superuserSecret"))
	}
	if _, _, ref := AppDatabase(cluster); ref != nil {
		field := "spec.bootstrap.initdb.secret"
		if b := cluster.Spec.Bootstrap; b != nil && b.InitDB == nil && b.PgBaseBackup != nil {
			field = "spec.bootstrap.pg_basebackup.secret"
		}
		errs = append(errs, checkUserSecret(ctx, c, cluster.Namespace, ref.Name, field))
	}
	desired, err := DesiredSecrets(cluster)
	if err != nil {
		return err
	}
	for _, s := range desired {
		errs = append(errs, ensureSecret(ctx, c, cluster, s))
	}
	return errors.Join(errs...)
}

// checkUserSecret checks that the Secret field names exists with non-empty
// username and password.
func checkUserSecret(ctx context.Context, c client.Client, ns, name, field string) error {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: ns, Name: name}
	if err := c.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return &SecretError{Secret: key.String(), Reason: ReasonSecretNotFound,
				Message: fmt.Sprintf("Secret %s, named by %s, does not exist: create it with keys %s and %s", key, field, SecretUsernameKey, SecretPasswordKey)}
		}
		return fmt.Errorf("reading Secret %s, named by %s: %w", key, field, err)
	}
	var missing []string
	for _, k := range []string{SecretUsernameKey, SecretPasswordKey} {
		if len(s.Data[k]) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		what := "key " + missing[0] + " is"
		if len(missing) > 1 {
			what = "keys " + strings.Join(missing, " and ") + " are"
		}
		return &SecretError{Secret: key.String(), Reason: ReasonSecretKeyMissing,
			Message: fmt.Sprintf("Secret %s, named by %s: %s missing or empty", key, field, what)}
	}
	return nil
}

// ensureSecret creates want unless a Secret of that name exists; one this
// Cluster does not control is an error.
func ensureSecret(ctx context.Context, c client.Client, cluster *apiv1.Cluster, want *corev1.Secret) error {
	key := client.ObjectKeyFromObject(want)
	var have corev1.Secret
	err := c.Get(ctx, key, &have)
	if apierrors.IsNotFound(err) {
		err = c.Create(ctx, want)
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating Secret %s: %w", key, err)
		}
		// Made meanwhile (or the cache is behind): look at it.
		err = c.Get(ctx, key, &have)
	}
	if err != nil {
		return fmt.Errorf("reading Secret %s: %w", key, err)
	}
	if !metav1.IsControlledBy(&have, cluster) {
		return &SecretError{Secret: key.String(), Reason: ReasonSecretNotOwned,
			Message: fmt.Sprintf("Secret %s exists but was not created by Cluster %s, so walship leaves it alone: "+
				"delete or rename it to let walship generate it, or name it in the Cluster's spec to use it", key, cluster.Name)}
	}
	return nil
}
