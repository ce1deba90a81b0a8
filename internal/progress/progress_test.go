package progress

import (
	"os"
	"testing"
)

func TestEveryEndsWithFinalCount(t *testing.T) {
	var last [2]int64
	calls := 0
	stop := Every(func() int64 { return 42 }, 100, func(d, tot int64) { last = [2]int64{d, tot}; calls++ })
	stop()
	if calls == 0 || last != [2]int64{42, 100} {
		t.Errorf("progress: %d calls, last %v", calls, last)
	}
}

// /dev/null is a character device but no terminal: no progress line there.
func TestDevNullIsNoTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if ToTerminal(null) {
		t.Error("/dev/null taken for a terminal")
	}
}
