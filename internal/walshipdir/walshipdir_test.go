package walshipdir

import "testing"

func TestLayout(t *testing.T) {
	for got, want := range map[string]string{
		Dir("/d/pg_wal"):                 "/d/pg_wal/walship",
		AgentSocket("/d/pg_wal"):         "/d/pg_wal/walship/agent.sock",
		Journal("/d/pg_wal", "0123abcd"): "/d/pg_wal/walship/journal-0123abcd",
		Prefetch("pg_wal", "k"):          "pg_wal/walship/prefetch-k",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}
