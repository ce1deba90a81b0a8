package shorthash

import "testing"

func TestOfTellsPartsApart(t *testing.T) {
	a, b := Of("ab", "c"), Of("a", "bc")
	if a == b || len(a) != 16 || Of("ab", "c") != a {
		t.Fatalf("Of(ab, c) = %s, Of(a, bc) = %s", a, b)
	}
}
