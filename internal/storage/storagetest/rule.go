package storagetest

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"
)

// Op names a storage.Store method, for a Rule to match.
type Op string

const (
	Put        Op = "Put"
	Get        Op = "Get"
	Stat       Op = "Stat"
	List       Op = "List"
	ListDir    Op = "ListDir"
	Delete     Op = "Delete"
	DeleteMany Op = "DeleteMany"
)

// A Rule matches calls by operation and key, counts them, and applies its
// fault to the first Times of them (to all when Times is 0). The key of
// List is its prefix, of ListDir its folder; DeleteMany matches when one of
// its keys does. Leave every match field zero to match every call, and
// every fault field zero for a rule that only counts.
//
// The faults apply in this order: Before, Delay, Wait, Hang, Err; then the
// store is called, and Body wraps what a successful Get returns (a Body
// rule fires only when there is a body to wrap).
type Rule struct {
	Op     Op                    // "" matches every operation
	Key    string                // exact key
	Prefix string                // keys starting with Prefix
	Match  func(key string) bool // keys it returns true for
	Times  int                   // fire this many times, then let calls through

	Before func(ctx context.Context, key string) // runs first: plant a file, cancel a context
	Delay  time.Duration                         // wait this long (or until the context ends)
	Wait   <-chan struct{}                       // wait until closed (or the context ends)
	Hang   bool                                  // wait until the context ends, return its error
	Err    error                                 // return Err instead of calling the store
	Body   func(io.ReadCloser) io.ReadCloser     // wrap a Get's body: Cut, Flip, OnClose

	mu        sync.Mutex
	fired     int
	keys      []string
	now, peak int
}

func (r *Rule) matches(op Op, key string) bool {
	return (r.Op == "" || r.Op == op) &&
		(r.Key == "" || key == r.Key) &&
		(r.Prefix == "" || strings.HasPrefix(key, r.Prefix)) &&
		(r.Match == nil || r.Match(key))
}

// enter counts a matched call and reports whether the fault fires for it.
func (r *Rule) enter(key string, fire bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, key)
	r.now++
	r.peak = max(r.peak, r.now)
	return fire && r.take()
}

func (r *Rule) take() bool {
	if r.Times > 0 && r.fired >= r.Times {
		return false
	}
	r.fired++
	return true
}

func (r *Rule) leave() { r.mu.Lock(); r.now--; r.mu.Unlock() }

// Calls is how many calls the rule matched, whether it fired or not.
func (r *Rule) Calls() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.keys) }

// Count is how many matched calls were for key.
func (r *Rule) Count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.keys {
		if k == key {
			n++
		}
	}
	return n
}

// Keys are the keys of the matched calls, in the order they came.
func (r *Rule) Keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.keys...)
}

// Peak is the most matched calls that were in progress at once (a Get
// ends when it returns, not when its body is read).
func (r *Rule) Peak() int { r.mu.Lock(); defer r.mu.Unlock(); return r.peak }

// apply runs the faults that come before the store is called; a non-nil
// error ends the call with it.
func (r *Rule) apply(ctx context.Context, key string) error {
	if r.Before != nil {
		r.Before(ctx, key)
	}
	if r.Delay > 0 {
		select {
		case <-time.After(r.Delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.Wait != nil {
		select {
		case <-r.Wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.Hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return r.Err
}

// Cut makes a body end after n bytes with err (io.ErrUnexpectedEOF when
// nil): a torn read, as a dropped connection gives.
func Cut(n int64, err error) func(io.ReadCloser) io.ReadCloser {
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return func(rc io.ReadCloser) io.ReadCloser { return &cutBody{ReadCloser: rc, left: n, err: err} }
}

type cutBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	n, err := c.ReadCloser.Read(p[:min(int64(len(p)), c.left)])
	c.left -= int64(n)
	return n, err
}

// Flip inverts the byte at offset off of a body: corruption the store did
// not notice.
func Flip(off int64) func(io.ReadCloser) io.ReadCloser {
	return func(rc io.ReadCloser) io.ReadCloser { return &flipBody{ReadCloser: rc, at: off} }
}

type flipBody struct {
	io.ReadCloser
	at, pos int64
}

func (f *flipBody) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if i := f.at - f.pos; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

// OnClose runs f when the body is closed, before closing it.
func OnClose(f func()) func(io.ReadCloser) io.ReadCloser {
	return func(rc io.ReadCloser) io.ReadCloser { return &closeHook{ReadCloser: rc, f: f} }
}

type closeHook struct {
	io.ReadCloser
	f func()
}

func (c *closeHook) Close() error { c.f(); return c.ReadCloser.Close() }

// Stalled makes a body that never yields a byte, whatever the context,
// until it is closed: a silent peer only a deadline on the reader ends.
func Stalled(rc io.ReadCloser) io.ReadCloser { rc.Close(); pr, _ := io.Pipe(); return pr }
