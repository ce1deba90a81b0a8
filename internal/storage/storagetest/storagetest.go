// Package storagetest holds stores for tests that behave like the stores
// walship meets in the field when they misbehave: a Store wraps any
// storage.Store and changes what a test asks it to change: errors, hangs,
// slow calls, torn or corrupt reads on chosen operations and keys (see
// Rule), a store that ignores If-None-Match, a writer getting in after a Put.
package storagetest

import (
	"context"
	"io"

	"github.com/walship/walship/internal/storage"
)

// Store wraps the embedded store; with every other field zero it passes
// every call through. The inner store may be nil when the rules answer
// every call the test makes.
type Store struct {
	storage.Store // the inner store

	// Rules, matched in order against each call: every rule that matches
	// counts the call; the first fault that ends it (Hang, Err) wins, and
	// Body wrappers stack.
	Rules []*Rule
	// Name, when set, is what String returns.
	Name string
	// IgnoreIfNotExists drops PutOptions.IfNotExists, like an S3-compatible
	// store that ignores If-None-Match and overwrites silently.
	IgnoreIfNotExists bool
	// AfterPut, when set, runs after each Put that succeeded and before it
	// returns: the moment a concurrent writer gets in.
	AfterPut func(ctx context.Context, key string)
}

// Wrap returns a Store around inner with rules.
func Wrap(inner storage.Store, rules ...*Rule) *Store { return &Store{Store: inner, Rules: rules} }

// enter runs the faults of the rules matching op on keys; leave must be
// called when the call returns. The rules with a Body are returned for a
// Get to wrap its body with.
func (s *Store) enter(ctx context.Context, op Op, keys ...string) (leave func(), bodies []*Rule, err error) {
	var matched []*Rule
	leave = func() {
		for _, r := range matched {
			r.leave()
		}
	}
	for _, r := range s.Rules {
		key, ok := matching(r, op, keys)
		if !ok {
			continue
		}
		matched = append(matched, r)
		if r.Body != nil {
			r.enter(key, false)
			bodies = append(bodies, r)
			continue
		}
		if r.enter(key, err == nil) {
			err = r.apply(ctx, key)
		}
	}
	return leave, bodies, err
}

func matching(r *Rule, op Op, keys []string) (string, bool) {
	for _, k := range keys {
		if r.matches(op, k) {
			return k, true
		}
	}
	return "", false
}

func (s *Store) Put(ctx context.Context, key string, body []byte, opts storage.PutOptions) error {
	leave, _, err := s.enter(ctx, Put, key)
	defer leave()
	if err != nil {
		return err
	}
	if s.IgnoreIfNotExists {
		opts.IfNotExists = false
	}
	if err := s.Store.Put(ctx, key, body, opts); err != nil {
		return err
	}
	if s.AfterPut != nil {
		s.AfterPut(ctx, key)
	}
	return nil
}

func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	leave, bodies, err := s.enter(ctx, Get, key)
	defer leave()
	if err != nil {
		return nil, err
	}
	rc, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	for _, r := range bodies {
		r.mu.Lock()
		fire := r.take()
		r.mu.Unlock()
		if fire {
			rc = r.Body(rc)
		}
	}
	return rc, nil
}

func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	leave, _, err := s.enter(ctx, Stat, key)
	defer leave()
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return s.Store.Stat(ctx, key)
}

func (s *Store) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	leave, _, err := s.enter(ctx, List, prefix)
	defer leave()
	if err != nil {
		return nil, err
	}
	return s.Store.List(ctx, prefix)
}

func (s *Store) ListDir(ctx context.Context, dir string) ([]storage.ObjectInfo, []string, error) {
	leave, _, err := s.enter(ctx, ListDir, dir)
	defer leave()
	if err != nil {
		return nil, nil, err
	}
	return s.Store.ListDir(ctx, dir)
}

func (s *Store) Delete(ctx context.Context, key string) error {
	leave, _, err := s.enter(ctx, Delete, key)
	defer leave()
	if err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}

func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	leave, _, err := s.enter(ctx, DeleteMany, keys...)
	defer leave()
	if err != nil {
		return err
	}
	return s.Store.DeleteMany(ctx, keys)
}

// Unwrap returns the inner store, so that storage.Load finds the retry
// policy of a store wrapped by Open under the faults.
func (s *Store) Unwrap() storage.Store { return s.Store }

func (s *Store) String() string {
	if s.Name != "" || s.Store == nil {
		return s.Name
	}
	return s.Store.String()
}
