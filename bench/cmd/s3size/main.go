// Command s3size prints the number of bytes and objects stored under a prefix
// of an S3 bucket, listed with minio-go: the benchmark's own count of what a
// tool stored, independent of the tool's report.
//
//	s3size -endpoint https://127.0.0.1:9000 -ca public.crt BUCKET PREFIX
//
// It prints "BYTES OBJECTS". Credentials come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint URL (https://host:port)")
	caFile := flag.String("ca", "", "PEM file of the CA certificates to trust")
	flag.Parse()
	if flag.NArg() != 2 || *endpoint == "" {
		fmt.Fprintln(os.Stderr, "usage: s3size -endpoint URL [-ca FILE] BUCKET PREFIX")
		os.Exit(2)
	}
	n, count, err := size(*endpoint, *caFile, flag.Arg(0), flag.Arg(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3size:", err)
		os.Exit(1)
	}
	fmt.Println(n, count)
}

func size(endpoint, caFile, bucket, prefix string) (int64, int, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return 0, 0, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return 0, 0, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return 0, 0, fmt.Errorf("%s: no PEM certificates", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		Secure:    u.Scheme == "https",
		Transport: tr,
		Region:    "us-east-1",
	})
	if err != nil {
		return 0, 0, err
	}
	var total int64
	var count int
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return 0, 0, o.Err
		}
		total += o.Size
		count++
	}
	return total, count, nil
}
