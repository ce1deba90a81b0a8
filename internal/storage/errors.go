package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/walship/walship/internal/fault"
)

// RepositoryURL is the setting that says where the repository is, as
// messages name it (see fault.Setting).
const RepositoryURL fault.Setting = "repository URL"

// permanentError carries a message written for people (what is wrong and what
// to do) while still matching ErrPermanent and the underlying cause with
// errors.Is/As. Its text leads with the message, not with "permanent storage
// error", so that callers can print it as is.
type permanentError struct {
	msg   string
	cause error
	also  []error // what else it is: a fault kind, the fault.SettingError msg is
}

func (e *permanentError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *permanentError) Unwrap() []error {
	errs := []error{ErrPermanent}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return append(errs, e.also...)
}

// permanent builds an error that matches ErrPermanent (and cause, if any).
func permanent(cause error, format string, args ...any) error {
	return &permanentError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// permanentSetting is permanent for a message that names setting s (format
// and args as fault.Settingf takes them), and of the given kinds.
func permanentSetting(cause error, kinds []error, s fault.Setting, format string, args ...any) error {
	se := fault.Settingf(s, format, args...)
	return &permanentError{msg: se.Error(), cause: cause, also: append([]error{se}, kinds...)}
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
