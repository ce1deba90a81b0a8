// Package repoapi builds repository settings from the API types and their
// Secrets: for the operator and the instance manager. It is apart from
// package repo so that cmd/walship links no Kubernetes code.
package repoapi

import (
	"errors"
	"fmt"
	"strings"

	apiv1 "github.com/walship/walship/api/v1"
	"github.com/walship/walship/internal/repo"
)

// SecretFunc returns the value of key in the Secret name (in the Cluster's
// namespace): what the operator reads from the API server, or the instance
// manager from its mounted Secrets.
type SecretFunc func(name, key string) ([]byte, error)

// FromCluster is the settings of a Cluster's repository r: the URL is
// destinationPath with the server name (r.ServerName, else cluster) as its
// folder; credentials, the endpoint's CA and the age identity come from
// Secrets through secret, never from disk. Compression and server-side
// encryption are the WAL's (r.Wal); a base backup takes r.Data's from the
// API type itself. Without s3Credentials, or with inheritFromIAMRole, S3
// credentials come from the AWS SDK's default chain (the pod's identity).
func FromCluster(r *apiv1.BackupRepository, cluster string, secret SecretFunc) (repo.Settings, error) {
	if r == nil {
		return repo.Settings{}, errors.New("the cluster has no backup repository configured")
	}
	server := r.ServerName
	if server == "" {
		server = cluster
	}
	if server == "" {
		return repo.Settings{}, errors.New("the backup repository has no serverName and the cluster no name")
	}
	s := repo.Settings{
		URL:         strings.TrimRight(r.DestinationPath, "/") + "/" + server,
		Compression: string(apiv1.CompressionZstd),
	}
	s.S3.Endpoint, s.S3.Region, s.S3.PathStyle = r.EndpointURL, r.Region, r.PathStyle
	read := func(what string, sel *apiv1.SecretKeySelector) ([]byte, string, error) {
		name := fmt.Sprintf("Secret %s key %s", sel.Name, sel.Key)
		b, err := secret(sel.Name, sel.Key)
		if err != nil {
			return nil, name, fmt.Errorf("%s: reading %s: %w", what, name, err)
		}
		if len(b) == 0 {
			return nil, name, fmt.Errorf("%s: %s is empty", what, name)
		}
		return b, name, nil
	}
	if r.EndpointCA != nil {
		ca, _, err := read("endpointCA", r.EndpointCA)
		if err != nil {
			return repo.Settings{}, err
		}
		s.S3.CAPEM = ca
	}
	if c := r.S3Credentials; c != nil && !c.InheritFromIAMRole {
		if c.AccessKeyID == nil || c.SecretAccessKey == nil {
			return repo.Settings{}, errors.New("s3Credentials needs accessKeyId and secretAccessKey, or inheritFromIAMRole: true")
		}
		id, _, err := read("s3Credentials.accessKeyId", c.AccessKeyID)
		if err != nil {
			return repo.Settings{}, err
		}
		secretKey, _, err := read("s3Credentials.secretAccessKey", c.SecretAccessKey)
		if err != nil {
			return repo.Settings{}, err
		}
		s.S3.Credentials.AccessKeyID = strings.TrimSpace(string(id))
		s.S3.Credentials.SecretAccessKey = strings.TrimSpace(string(secretKey))
		if c.SessionToken != nil {
			token, _, err := read("s3Credentials.sessionToken", c.SessionToken)
			if err != nil {
				return repo.Settings{}, err
			}
			s.S3.Credentials.SessionToken = strings.TrimSpace(string(token))
		}
	}
	if a := r.Age; a != nil {
		s.Recipients = strings.Join(a.Recipients, ",")
		if a.Identity != nil {
			id, name, err := read("age.identity", a.Identity)
			if err != nil {
				return repo.Settings{}, err
			}
			s.Identity, s.IdentitySource = id, name
		}
	}
	if w := r.Wal; w != nil {
		if w.Compression != "" {
			s.Compression = string(w.Compression)
		}
		s.S3.SSE = string(w.Encryption)
	}
	return s, nil
}
