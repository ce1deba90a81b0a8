// Package progress reports how far a long operation (a backup, a restore)
// got, once a second.
package progress

import "time"

// Every calls report(done(), total) every second, and once more when the
// returned stop is called; stop returns after that last report, so the last
// line a user sees has the final count.
func Every(done func() int64, total int64, report func(done, total int64)) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				report(done(), total)
				return
			case <-t.C:
				report(done(), total)
			}
		}
	}()
	return func() { close(quit); <-finished }
}
