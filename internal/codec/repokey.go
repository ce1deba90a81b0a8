package codec

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// A repository key file holds the secret that authenticates a repository
// (see mac.go): at least MinKeySize random bytes, as they are or as their hex
// or base64 text. Text lines starting with # are comments. Error messages
// name the file, never its contents.

// maxKeyFile bounds what is read of a key file: keys are short.
const maxKeyFile = 4 << 10

// NewRepositoryKey returns a new random 32-byte secret in the text form
// LoadRepositoryKey reads: a comment line, then base64.
func NewRepositoryKey() string {
	secret := make([]byte, 32)
	rand.Read(secret) // never fails, see crypto/rand
	return "# walship repository key: keep it secret, and the same on every server of the repository\n" +
		base64.StdEncoding.EncodeToString(secret) + "\n"
}

// LoadRepositoryKey reads the secret of the repository key file at path.
func LoadRepositoryKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("repository key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("repository key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("repository key file %s is larger than %d bytes: it is not a key", path, maxKeyFile)
	}
	secret, err := parseRepositoryKey(b)
	if err != nil {
		return nil, fmt.Errorf("repository key file %s %v", path, err)
	}
	return secret, nil
}

// ParseRepositoryKey reads the secret of a repository key file's contents
// (a key from a Secret, never written to disk); source names it in errors
// ("repository key from Secret x key y").
func ParseRepositoryKey(b []byte, source string) ([]byte, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: it is not a key", source, maxKeyFile)
	}
	secret, err := parseRepositoryKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s %v", source, err)
	}
	return secret, nil
}

// parseRepositoryKey decodes a key file's contents; its errors complete a
// sentence that starts with the file's name.
func parseRepositoryKey(b []byte) ([]byte, error) {
	secret := b
	if isText(b) {
		text := keyText(string(b))
		var ok bool
		if secret, ok = decodeKeyText(text); !ok {
			return nil, fmt.Errorf("holds text that is neither hex nor base64: write %d random bytes to it, or their hex or base64 text", MinKeySize)
		}
	}
	if len(secret) < MinKeySize {
		return nil, fmt.Errorf("holds a %d-byte secret; a repository key needs at least %d random bytes", len(secret), MinKeySize)
	}
	return secret, nil
}

// isText tells a key written as text from raw random bytes, which are all
// printable with a chance below 1e-14 for 32 bytes.
func isText(b []byte) bool {
	for _, c := range b {
		if (c < ' ' || c > '~') && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

// keyText is the key's text without comment lines and white space.
func keyText(s string) string {
	var key strings.Builder
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); !strings.HasPrefix(line, "#") {
			key.WriteString(line)
		}
	}
	return key.String()
}

// decodeKeyText decodes hex first: every hex text is also valid base64.
func decodeKeyText(s string) ([]byte, bool) {
	if b, err := hex.DecodeString(s); err == nil {
		return b, true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}
