package storage

import (
	"context"
	"errors"
	"fmt"
)

// permanentError carries a message written for people (what is wrong and what
// to do) while still matching ErrPermanent and the underlying cause with
// errors.Is/As. Its text leads with the message, not with "permanent storage
// error", so that callers can print it as is.
type permanentError struct {
	msg   string
	cause error
}

func (e *permanentError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *permanentError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrPermanent}
	}
	return []error{ErrPermanent, e.cause}
}

// permanent builds an error that matches ErrPermanent (and cause, if any).
func permanent(cause error, format string, args ...any) error {
	return &permanentError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// IsTransient reports whether a retry might succeed: anything except a
// missing object, a taken key, a permanent error, or a cancelled context.
// A timed-out call (context.DeadlineExceeded) is transient: the next attempt
// gets a fresh deadline. The retry wrapper separately stops when the caller's
// own context is done.
func IsTransient(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrNotFound),
		errors.Is(err, ErrExists),
		errors.Is(err, ErrPermanent),
		errors.Is(err, context.Canceled):
		return false
	}
	return true
}
