package storage

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// This file proves that the S3 backend gets credentials the way a Kubernetes
// pod does (IRSA, projected service-account tokens): AWS_ROLE_ARN plus
// AWS_WEB_IDENTITY_TOKEN_FILE, exchanged by the AWS SDK for temporary
// credentials with STS AssumeRoleWithWebIdentity. STS is a real MinIO that
// trusts an OpenID provider served by the test; nothing here is faked but
// the identity provider, and everything stays on 127.0.0.1.

const (
	oidcClientID = "walship-irsa"       // the token's audience, as in an EKS pod's projected token
	oidcKeyID    = "walship-test-key-1" // kid of the provider's only signing key
	irsaRoleARN  = "arn:aws:iam::123456789012:role/walship"
	irsaSubject  = "system:serviceaccount:db:walship"
)

// testOIDC is an OpenID provider reduced to what MinIO reads: the discovery
// document and the JWKS with one RSA key.
type testOIDC struct {
	*httptest.Server
	key        *rsa.PrivateKey
	jwksserved atomic.Int32
}

func newTestOIDC(t *testing.T) *testOIDC {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testOIDC{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := p.URL
		writeJSON(w, map[string]any{
			"issuer":                                u,
			"authorization_endpoint":                u + "/authorize",
			"token_endpoint":                        u + "/token",
			"jwks_uri":                              u + "/jwks",
			"response_types_supported":              []string{"code", "id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"scopes_supported":                      []string{"openid"},
			"claims_supported":                      []string{"sub", "aud", "iss", "exp", "iat", "policy"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksserved.Add(1)
		pub := key.PublicKey
		writeJSON(w, map[string]any{"keys": []map[string]string{{
			"kty": "RSA",
			"use": "sig",
			"alg": "RS256",
			"kid": oidcKeyID,
			"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	})
	p.Server = httptest.NewServer(mux) // 127.0.0.1 only
	t.Cleanup(p.Close)
	return p
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// claims are those of a projected service-account token, plus the policy
// claim MinIO maps to a policy (MINIO_IDENTITY_OPENID_CLAIM_NAME).
func (p *testOIDC) claims(policy string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":    p.URL,
		"sub":    irsaSubject,
		"aud":    oidcClientID,
		"azp":    oidcClientID,
		"iat":    now.Add(-time.Minute).Unix(),
		"nbf":    now.Add(-time.Minute).Unix(),
		"exp":    now.Add(time.Hour).Unix(),
		"policy": policy,
	}
}

// signJWT builds a compact RS256 JWS by hand: header.payload.signature.
func signJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	hdr, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": oidcKeyID})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + enc.EncodeToString(sig)
}

// startMinioWithOIDC starts MinIO trusting the provider for
// AssumeRoleWithWebIdentity, with policies taken from the "policy" claim.
// startMinio passes this process's environment on, so the settings go there
// for the duration of the test.
func startMinioWithOIDC(t *testing.T, idp *testOIDC) *testMinio {
	t.Helper()
	t.Setenv("MINIO_IDENTITY_OPENID_CONFIG_URL", idp.URL+"/.well-known/openid-configuration")
	t.Setenv("MINIO_IDENTITY_OPENID_CLIENT_ID", oidcClientID)
	t.Setenv("MINIO_IDENTITY_OPENID_CLAIM_NAME", "policy")
	m := startMinio(t, "", nil)
	for _, v := range []string{"MINIO_IDENTITY_OPENID_CONFIG_URL", "MINIO_IDENTITY_OPENID_CLIENT_ID", "MINIO_IDENTITY_OPENID_CLAIM_NAME"} {
		os.Unsetenv(v) // t.Setenv restores the old value after the test
	}
	// MinIO loads its identity configuration after it reports live.
	for deadline := time.Now().Add(30 * time.Second); idp.jwksserved.Load() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("MinIO did not fetch the provider's JWKS within 30s; OpenID is not configured:\n%s", m.out.String())
		}
	}
	return m
}

// useWebIdentity configures the SDK as EKS does for a pod with IRSA, with
// STS at the MinIO endpoint. No static keys are set (hermeticAWS cleared them).
func useWebIdentity(t *testing.T, m *testMinio) (tokenFile string) {
	t.Helper()
	tokenFile = filepath.Join(t.TempDir(), "token")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_ROLE_ARN", irsaRoleARN)
	t.Setenv("AWS_ROLE_SESSION_NAME", "walship-test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_STS", m.Endpoint)
	return tokenFile
}

func writeToken(t *testing.T, path, token string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestS3WebIdentity(t *testing.T) {
	hermeticAWS(t)
	idp := newTestOIDC(t)
	m := startMinioWithOIDC(t, idp)
	mc := minioClient(t, m, nil) // root credentials, only to set up and check
	makeBucket(t, mc, "walship")
	ctx := context.Background()
	seed := []byte("seeded by the root user")
	if _, err := mc.PutObject(ctx, "walship", "irsa-ro/seed", bytes.NewReader(seed), int64(len(seed)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	tokenFile := useWebIdentity(t, m)
	opts := s3Opts(m)
	opts.S3.Region = "us-east-1"

	t.Run("readwrite", func(t *testing.T) {
		writeToken(t, tokenFile, signJWT(t, idp.key, idp.claims("readwrite")))

		// The credentials the backend signs with are MinIO STS temporary
		// credentials obtained with the token file.
		b, err := newS3Store(ctx, "walship", "irsa", opts.S3)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := b.creds.Retrieve(ctx)
		if err != nil {
			t.Fatalf("retrieve credentials: %v\nminio log:\n%s", err, m.out.String())
		}
		if creds.Source != "WebIdentityCredentials" || creds.SessionToken == "" || !creds.CanExpire ||
			creds.AccessKeyID == "" || creds.AccessKeyID == minioUser {
			t.Fatalf("credentials: source %q, session token set %v, can expire %v, access key %q; want temporary web-identity credentials",
				creds.Source, creds.SessionToken != "", creds.CanExpire, creds.AccessKeyID)
		}
		if left := time.Until(creds.Expires); left <= 0 || left > 13*time.Hour {
			t.Errorf("credentials expire in %v", left)
		}
		t.Logf("STS issued %s... (source %s), expiring in %v", creds.AccessKeyID[:4], creds.Source, time.Until(creds.Expires).Round(time.Second))

		// The whole contract through Open (retry and timeout wrappers included).
		s := openS3(t, "s3://walship/irsa", opts)
		testStoreContract(t, s)
		obj, err := mc.GetObject(ctx, "walship", "irsa/backups/b1/manifest.json", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(obj); err != nil || string(got) != "body of backups/b1/manifest.json" {
			t.Fatalf("read back with minio-go: %q, %v", got, err)
		}
	})

	// MinIO grants what the token's policy claim says: a readonly token
	// reads but cannot write. So the token, not anything else, decides.
	t.Run("readonly claim", func(t *testing.T) {
		writeToken(t, tokenFile, signJWT(t, idp.key, idp.claims("readonly")))
		s := openS3(t, "s3://walship/irsa-ro", opts)
		if got := readAll(t, s, "seed"); got != string(seed) {
			t.Fatalf("get seed: %q", got)
		}
		err := s.Put(ctx, "new", []byte("x"), PutOptions{})
		if err == nil || !errors.Is(err, ErrPermanent) || IsTransient(err) || !strings.Contains(err.Error(), "denied") {
			t.Fatalf("put with a readonly token: %v; want a permanent access-denied error", err)
		}
		t.Logf("put with a readonly token: %v", err)
	})

	// A token MinIO cannot verify (signed by another key, or for another
	// audience) yields no credentials: a permanent error that names STS and
	// never echoes the token.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrongAud := idp.claims("readwrite")
	wrongAud["aud"], wrongAud["azp"] = "someone-else", "someone-else"
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"untrusted key", signJWT(t, other, idp.claims("readwrite"))},
		{"wrong audience", signJWT(t, idp.key, wrongAud)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeToken(t, tokenFile, tc.token)
			s := openS3(t, "s3://walship/irsa", opts) // Open contacts nothing
			start := time.Now()
			err := s.Put(ctx, "k", []byte("x"), PutOptions{})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("put succeeded with a token MinIO must reject")
			}
			if !errors.Is(err, ErrPermanent) || IsTransient(err) {
				t.Fatalf("error is not permanent: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "AssumeRoleWithWebIdentity") {
				t.Errorf("error does not say STS AssumeRoleWithWebIdentity failed: %s", msg)
			}
			sig := tc.token[strings.LastIndex(tc.token, ".")+1:]
			payload := strings.Split(tc.token, ".")[1]
			if strings.Contains(msg, tc.token) || strings.Contains(msg, sig) || strings.Contains(msg, payload) {
				t.Errorf("error echoes the token: %s", msg)
			}
			if elapsed > 5*time.Second {
				t.Errorf("took %v to fail; a permanent error must not be retried", elapsed)
			}
			t.Logf("after %v: %s", elapsed.Round(time.Millisecond), msg)
			// And nothing was written.
			if _, err := mc.StatObject(ctx, "walship", "irsa/k", minio.StatObjectOptions{}); err == nil {
				t.Error("object irsa/k exists after the rejected put")
			}
		})
	}
}
