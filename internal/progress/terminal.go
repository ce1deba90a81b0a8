package progress

import (
	"os"

	"golang.org/x/term"
)

// ToTerminal reports whether f is a terminal, where a line that redraws
// itself belongs. A character device is not enough: /dev/null is one.
func ToTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
