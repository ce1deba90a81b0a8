// Package shorthash names a string by a short hash (FNV-1a, 64 bits, in
// hex), for local file names and wire fields keyed by settings. It imports
// nothing, so walship's fast path (internal/fastpath, internal/spool,
// internal/agentsock) can use it while the program is still starting. Not
// for anything an attacker chooses to collide.
package shorthash

// Of returns the FNV-1a hash of the parts, each ended by a byte no text
// setting holds, as 16 hexadecimal digits.
func Of(parts ...string) string {
	h := uint64(14695981039346656037)
	for _, s := range parts {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * 1099511628211
		}
		h = (h ^ 0xff) * 1099511628211
	}
	const digits = "0123456789abcdef"
	var out [16]byte
	for i := range out {
		out[15-i] = digits[h&15]
		h >>= 4
	}
	return string(out[:])
}
