package harness

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// EnvWithPolicy is Env(bucket, prefix) with temporary credentials that
// MinIO's STS (AssumeRole) issues to the root user, limited by policy (an
// IAM policy document): walship may do only what policy allows, as an AWS
// user or role with that policy. Plain HTTP only.
func (m *MinIO) EnvWithPolicy(t testing.TB, bucket, prefix, policy string) []string {
	t.Helper()
	sts, err := credentials.NewSTSAssumeRole(m.Endpoint, credentials.STSAssumeRoleOptions{
		AccessKey: m.AccessKey, SecretKey: m.SecretKey, Policy: policy, Location: m.Region,
	})
	if err != nil {
		t.Fatalf("harness: AssumeRole: %v", err)
	}
	v, err := sts.Get()
	if err != nil {
		t.Fatalf("harness: AssumeRole with a policy: %v", err)
	}
	return append(m.Env(bucket, prefix),
		"AWS_ACCESS_KEY_ID="+v.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+v.SecretAccessKey,
		"AWS_SESSION_TOKEN="+v.SessionToken)
}

// accessDeniedXML is the body of AWS S3's 403 for a read of a missing object.
const accessDeniedXML = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
	`<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`

// DenyMissingLikeAWS starts a stand-in for one behaviour of AWS S3 that
// MinIO lacks for signed requests: AWS answers a GET or HEAD of a missing
// object with 403 AccessDenied instead of 404 when the caller may not list
// the bucket (no s3:ListBucket). It is a proxy in front of the server that
// turns each 404 to an object read into that 403; everything else passes
// unchanged. It returns the proxy's endpoint, for WALSHIP_S3_ENDPOINT.
func (m *MinIO) DenyMissingLikeAWS(t testing.TB) string {
	t.Helper()
	return m.proxy(t, roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(req)
		isObject := strings.Contains(strings.Trim(req.URL.Path, "/"), "/") // path style: /bucket/key
		if err != nil || resp.StatusCode != http.StatusNotFound || !isObject || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
			return resp, err
		}
		resp.Body.Close()
		body := accessDeniedXML
		if req.Method == http.MethodHead {
			body = ""
		}
		return answer(req, http.StatusForbidden, body, http.Header{"Content-Type": {"application/xml"}}), nil
	}))
}

// IgnoreIfNoneMatch starts a stand-in for the S3-compatible stores that
// ignore If-None-Match: a proxy in front of the server that, where the
// server refuses a conditional PUT (412, the object exists), overwrites the
// object anyway (as the root user) and answers 200. Everything else passes
// unchanged. It returns the proxy's endpoint, for WALSHIP_S3_ENDPOINT.
func (m *MinIO) IgnoreIfNoneMatch(t testing.TB) string {
	t.Helper()
	return m.proxy(t, roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodPut || req.Header.Get("If-None-Match") == "" {
			return http.DefaultTransport.RoundTrip(req)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusPreconditionFailed {
			return resp, err
		}
		resp.Body.Close()
		bucket, key, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
		info, err := m.Client.PutObject(req.Context(), bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		if err != nil {
			return answer(req, http.StatusInternalServerError, err.Error(), nil), nil
		}
		return answer(req, http.StatusOK, "", http.Header{"Etag": {`"` + info.ETag + `"`}}), nil
	}))
}

// proxy serves a reverse proxy to the server through transport, until the
// test ends, and returns its endpoint.
func (m *MinIO) proxy(t testing.TB, transport http.RoundTripper) string {
	t.Helper()
	target, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	srv := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the signature covers the Host the client used
		},
		Transport: transport,
	})
	t.Cleanup(srv.Close)
	return srv.URL
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// answer is a response made up by a stand-in, with the server's name.
func answer(req *http.Request, status int, body string, h http.Header) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Server", "MinIO")
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}
