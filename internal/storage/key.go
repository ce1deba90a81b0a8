package storage

import (
	"strings"
)

// checkKey rejects keys that could escape the repository root or that name
// no object: empty, absolute, with empty, "." or ".." segments, or with NUL.
// Every backend applies it, so a key means the same thing everywhere. The
// error is permanent: retrying a bad key cannot help.
func checkKey(key string) error {
	if key == "" {
		return permanent(nil, "empty storage key")
	}
	if strings.HasPrefix(key, "/") || strings.ContainsRune(key, 0) {
		return permanent(nil, "invalid storage key %q: keys are relative slash-separated paths", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return permanent(nil, "invalid storage key %q: empty, \".\" and \"..\" path segments are not allowed", key)
		}
	}
	return nil
}

// checkDir accepts "" (the top) or a valid prefix ending in "/".
func checkDir(dir string) error {
	if dir != "" && !strings.HasSuffix(dir, "/") {
		return permanent(nil, "invalid storage folder %q: it must end with /", dir)
	}
	return checkPrefix(dir)
}

// checkPrefix accepts "" (everything), a key, or a key followed by "/".
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return checkKey(strings.TrimSuffix(prefix, "/"))
}
