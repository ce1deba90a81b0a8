// Package storagetest holds stores for tests that behave like the stores
// walship meets in the field when they misbehave: a Store wraps any
// storage.Store and changes what a test asks it to change.
package storagetest

import (
	"context"

	"github.com/walship/walship/internal/storage"
)

// Store wraps the embedded store; with every other field zero it passes
// every call through.
type Store struct {
	storage.Store // the inner store

	// IgnoreIfNotExists drops PutOptions.IfNotExists, like an S3-compatible
	// store that ignores If-None-Match and overwrites silently.
	IgnoreIfNotExists bool
	// AfterPut, when set, runs after each Put that succeeded and before it
	// returns: the moment a concurrent writer gets in.
	AfterPut func(ctx context.Context, key string)
}

// Wrap returns a Store around inner that passes every call through.
func Wrap(inner storage.Store) *Store { return &Store{Store: inner} }

func (s *Store) Put(ctx context.Context, key string, body []byte, opts storage.PutOptions) error {
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
