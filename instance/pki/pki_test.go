package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("mycluster", now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func pool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func TestCA(t *testing.T) {
	ca := newCA(t)
	if ca.Cert.Subject.CommonName != "mycluster-ca" || !ca.Cert.IsCA {
		t.Errorf("CA: CN %q, IsCA %v", ca.Cert.Subject.CommonName, ca.Cert.IsCA)
	}
	if !ca.Cert.NotAfter.Equal(now.Add(CAValidity)) {
		t.Errorf("CA NotAfter = %v", ca.Cert.NotAfter)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key is not PKCS#8 PEM: %.40s", keyPEM)
	}
	back, err := ParseCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) || !back.Key.Equal(ca.Key) {
		t.Error("ParseCA does not return the CA")
	}
	// The parsed CA signs certificates that the original verifies.
	certPEM, _, err := back.ClientCert("app", now)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, ca, certPEM, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	if _, err := NewCA("", now); err == nil {
		t.Error("NewCA with no cluster name: no error")
	}
}

func verify(t *testing.T, ca *CA, certPEM []byte, opts x509.VerifyOptions) *x509.Certificate {
	t.Helper()
	cert, err := ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	opts.Roots = pool(ca)
	opts.CurrentTime = now
	if _, err := cert.Verify(opts); err != nil {
		t.Errorf("verify %q (DNS %q): %v", cert.Subject.CommonName, opts.DNSName, err)
	}
	return cert
}

func TestServerCert(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM, err := ca.ServerCert("mycluster", "prod", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	var names []string
	for _, svc := range []string{"mycluster-rw", "mycluster-ro", "mycluster-r"} {
		names = append(names, svc, svc+".prod", svc+".prod.svc", svc+".prod.svc.cluster.local")
	}
	for _, n := range names {
		verify(t, ca, certPEM, x509.VerifyOptions{DNSName: n, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	}
	cert, _ := ParseCert(certPEM)
	if len(cert.DNSNames) != len(names) {
		t.Errorf("DNS names %v, want %v", cert.DNSNames, names)
	}
	for _, n := range []string{"mycluster-rw.other", "other-rw", "mycluster"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(ca), CurrentTime: now, DNSName: n}); err == nil {
			t.Errorf("server certificate valid for %q", n)
		}
	}
	// Not for clients, and not under another CA.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(ca), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate valid for client authentication")
	}
	other, err := NewCA("mycluster", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(other), CurrentTime: now, DNSName: "mycluster-rw"}); err == nil {
		t.Error("server certificate verifies under another CA")
	}
	if !cert.NotAfter.Equal(now.Add(LeafValidity)) {
		t.Errorf("NotAfter = %v", cert.NotAfter)
	}
	if _, _, err := ca.ServerCert("mycluster", "", now); err == nil {
		t.Error("ServerCert with no namespace: no error")
	}
}

func TestClientCert(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM, err := ca.ClientCert("streaming_replica", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	cert := verify(t, ca, certPEM, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if cert.Subject.CommonName != "streaming_replica" {
		t.Errorf("CN = %q", cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(ca), CurrentTime: now}); err == nil {
		t.Error("client certificate valid for server authentication")
	}
	if _, _, err := ca.ClientCert("", now); err == nil {
		t.Error("ClientCert with no user: no error")
	}
}

func TestNeedsRenewal(t *testing.T) {
	ca := newCA(t)
	certPEM, _, err := ca.ClientCert("app", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ParseCert(certPEM)
	validity := cert.NotAfter.Sub(cert.NotBefore)
	renewAt := cert.NotAfter.Add(-validity / 3)
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{now, false},
		{renewAt.Add(-time.Second), false},
		{renewAt, false},
		{renewAt.Add(time.Second), true},
		{cert.NotAfter, true},
		{cert.NotAfter.Add(time.Hour), true},
	} {
		got, err := NeedsRenewal(certPEM, c.at)
		if err != nil || got != c.want {
			t.Errorf("NeedsRenewal at %v = %v, %v; want %v", c.at, got, err, c.want)
		}
	}
	caRenew, err := NeedsRenewal(ca.CertPEM(), now.Add(6*365*24*time.Hour))
	if err != nil || caRenew {
		t.Errorf("CA after 6 of 10 years: renew %v, %v", caRenew, err)
	}
	if caRenew, _ := NeedsRenewal(ca.CertPEM(), now.Add(7*365*24*time.Hour)); !caRenew {
		t.Error("CA after 7 of 10 years: no renewal")
	}
	for _, bad := range []string{"", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if got, err := NeedsRenewal([]byte(bad), now); err == nil || !got {
			t.Errorf("NeedsRenewal(%q) = %v, %v; want true and an error", bad, got, err)
		}
	}
}

func TestBadPEM(t *testing.T) {
	ca := newCA(t)
	keyPEM, _ := ca.KeyPEM()
	leafPEM, leafKey, err := ca.ClientCert("app", now)
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t)
	otherKey, _ := other.KeyPEM()
	for _, c := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"empty", nil, nil, "no PEM"},
		{"garbage cert", []byte("not pem"), keyPEM, "no PEM"},
		{"truncated cert", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), keyPEM, "certificate"},
		{"key as cert", keyPEM, keyPEM, "no PEM CERTIFICATE"},
		{"garbage key", ca.CertPEM(), []byte("not pem"), "no PEM"},
		{"cert as key", ca.CertPEM(), ca.CertPEM(), "not a private key"},
		{"corrupt key", ca.CertPEM(), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "key"},
		{"leaf as CA", leafPEM, leafKey, "not a CA"},
		{"another CA's key", ca.CertPEM(), otherKey, "does not match"},
	} {
		_, err := ParseCA(c.cert, c.key)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseCA error %v, want one saying %q", c.name, err, c.want)
		}
	}
}
