package pg

import (
	"fmt"
	"strings"
)

// ConfQuote quotes a value for postgresql.conf so that PostgreSQL reads it
// back unchanged (its parser undoes these escapes: GUC_scanstr): a quote is
// doubled, a backslash and every control character escaped. A newline or
// carriage return in a value therefore never ends its line: it cannot end
// the quotes early or start another setting. A NUL byte (\000) would cut
// the value short; settings are refused before with checkSettings.
func ConfQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			b.WriteString("''")
		case c == '\\':
			b.WriteString(`\\`)
		case confEscapes[c] != "":
			b.WriteString(confEscapes[c])
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// confEscapes are the named escapes PostgreSQL's configuration parser knows.
var confEscapes = map[byte]string{'\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}
