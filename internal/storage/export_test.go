package storage

import "testing"

// StartMinIOStore is for the tests of package storage_test, which can use
// storagetest (package storage's own tests cannot: storagetest imports
// storage). It starts a MinIO server with bucket, hands walship its root
// user, and opens s3://bucket/prefix on it.
func StartMinIOStore(t *testing.T, bucket, prefix string) Store {
	t.Helper()
	hermeticAWS(t)
	m := startMinio(t, "", nil)
	makeBucket(t, minioClient(t, m, nil), bucket)
	useMinioCredentials(t)
	return openS3(t, "s3://"+bucket+"/"+prefix, s3Opts(m))
}

// NewFileStore, Permanent and ReadAll are for the tests of package storage_test.
var (
	NewFileStore = func(root string) (Store, error) { return newFileStore(root) }
	Permanent    = permanent
	ReadAll      = readAll
)
