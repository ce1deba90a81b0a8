package pg

import (
	"strings"
	"testing"
)

func TestConfQuote(t *testing.T) {
	if got := ConfQuote(`a'b\c`); got != `'a''b\\c'` {
		t.Errorf("ConfQuote = %s", got)
	}
}

// TestConfQuoteKeepsValueOnItsLine: a value holding a newline, a carriage
// return or another control character stays on its line and inside its
// quotes, so it cannot add a setting to postgresql.auto.conf, and
// PostgreSQL reads back the value itself (e2e's TestRestoreConfQuote
// asks a real server).
func TestConfQuoteKeepsValueOnItsLine(t *testing.T) {
	for _, v := range []string{
		"x\nrecovery_target_action = 'shutdown'",
		"x\rrecovery_target_action = 'shutdown'",
		"x'\n archive_mode = on #",
		"tab\tbell\a del\x7f back\\slash \b\f 1\0012 é",
	} {
		q := ConfQuote(v)
		if strings.IndexFunc(q, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			t.Errorf("ConfQuote(%q) = %q holds a control character", v, q)
		}
		if got, ok := scanConfString(q); !ok || got != v {
			t.Errorf("ConfQuote(%q) = %q, which PostgreSQL reads as %q (a whole string: %v)", v, q, got, ok)
		}
	}
}

// scanConfString reads a quoted value the way PostgreSQL's configuration
// lexer (guc-file.l: STRING, then GUC_scanstr) does; ok is false when q is
// not one whole quoted string.
func scanConfString(q string) (string, bool) {
	if len(q) < 2 || q[0] != '\'' || q[len(q)-1] != '\'' {
		return "", false
	}
	s := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\n':
			return "", false // the lexer's strings never span lines
		case c == '\'':
			if i+1 >= len(s) || s[i+1] != '\'' {
				return "", false // the string ended early
			}
			b.WriteByte('\'')
			i++
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v, k := 0, 0
				for ; k < 3 && i+k < len(s) && s[i+k] >= '0' && s[i+k] <= '7'; k++ {
					v = v<<3 + int(s[i+k]-'0')
				}
				i += k - 1
				b.WriteByte(byte(v))
			default:
				b.WriteByte(s[i])
			}
		case c == '\\':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
