// Package pki makes the per-cluster certificates of a PostgreSQL Cluster, as
// CloudNativePG does: a self-signed CA per Cluster, a server certificate for
// the instances (valid for the -rw, -ro and -r Services) and client
// certificates whose CommonName is the PostgreSQL role they authenticate
// (pg_hba's cert method), e.g. streaming_replica for replication.
//
// Keys are ECDSA P-256, PEM-encoded as PKCS#8 ("PRIVATE KEY"), which
// PostgreSQL, libpq and pgx accept. The package uses the standard library
// only: the walship binary imports it, not only the operator.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Validity of the certificates this package makes. Certificates start an hour
// before now, so that a clock a little behind still accepts them.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
	backdate     = time.Hour
)

// CA is a Cluster's certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA for cluster, CommonName "<cluster>-ca".
func NewCA(cluster string, now time.Time) (*CA, error) {
	if cluster == "" {
		return nil, errors.New("pki: empty cluster name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cluster + "-ca", OrganizationalUnit: []string{cluster}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM returns the CA's certificate, PEM-encoded (ssl_ca_file, sslrootcert).
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM returns the CA's private key, PEM-encoded as PKCS#8.
func (ca *CA) KeyPEM() ([]byte, error) {
	return keyPEM(ca.Key)
}

// ParseCA reads a CA from the PEM of its certificate and key, as CertPEM and
// KeyPEM write them. The certificate must be a CA and the key must be its key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, errors.New("pki: certificate is not a CA")
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("pki: CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ParseCert reads the first certificate of a PEM document.
func ParseCert(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate: %w", err)
	}
	return cert, nil
}

// ParseKey reads an ECDSA private key from a PEM PKCS#8 ("PRIVATE KEY") or
// SEC 1 ("EC PRIVATE KEY") block.
func ParseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("pki: no PEM block in key")
	}
	switch b.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("pki: key is %T, want ECDSA", k)
		}
		return ek, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("pki: PEM block %q is not a private key", b.Type)
}

// ServiceNames returns the DNS names of a Cluster's Services -rw, -ro and -r
// in namespace, each as name, name.ns, name.ns.svc and
// name.ns.svc.cluster.local.
func ServiceNames(cluster, namespace string) []string {
	var names []string
	for _, suffix := range []string{"-rw", "-ro", "-r"} {
		n := cluster + suffix
		names = append(names, n, n+"."+namespace, n+"."+namespace+".svc", n+"."+namespace+".svc.cluster.local")
	}
	return names
}

// ServerCert makes the instances' server certificate (ssl_cert_file,
// ssl_key_file), CommonName "<cluster>-rw", valid for ServiceNames.
func (ca *CA) ServerCert(cluster, namespace string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if cluster == "" || namespace == "" {
		return nil, nil, errors.New("pki: server certificate needs a cluster and a namespace")
	}
	return ca.leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cluster + "-rw"},
		DNSNames:    ServiceNames(cluster, namespace),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, now)
}

// ClientCert makes a client certificate for the PostgreSQL role user (its
// CommonName), for pg_hba's cert method.
func (ca *CA) ClientCert(user string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if user == "" {
		return nil, nil, errors.New("pki: client certificate needs a user")
	}
	return ca.leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, now)
}

func (ca *CA) leaf(tmpl *x509.Certificate, now time.Time) (certPEM, kPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(LeafValidity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, crypto.Signer(ca.Key))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	kPEM, err = keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kPEM, nil
}

// NeedsRenewal reports whether a certificate should be replaced: less than a
// third of its validity is left at now, or it does not parse (then with the
// error).
func NeedsRenewal(certPEM []byte, now time.Time) (bool, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return true, err
	}
	validity := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Sub(now) < validity/3, nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
