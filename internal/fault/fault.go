// Package fault defines the kinds of failure walship's library packages
// report, so that a caller decides with errors.Is whichever package an
// error came from, and the SettingError that names a caller's setting in
// the domain's words.
//
// Library messages say what went wrong in the domain's words and never how
// a particular program takes its settings: cmd/walship turns a SettingError
// into its flags and environment variables, and the kinds into exit codes;
// the operator and the instance manager name their own fields.
package fault

import (
	"errors"
	"fmt"
)

// The kinds. A library error is, wraps or is marked with one of these.
var (
	// ErrNotFound: what was asked for does not exist (an object, an
	// archived WAL file, a backup). Never returned for a failure that
	// might heal.
	ErrNotFound = errors.New("not found")
	// ErrConflict: something else is already there: a conditional write
	// found its key taken, a different file is archived under the name.
	ErrConflict = errors.New("conflict")
	// ErrRepositoryMissing: the location holds no repository (no identity
	// record, no bucket): a missing file there proves nothing.
	ErrRepositoryMissing = errors.New("no repository at this location")
	// ErrIdentityMismatch: a repository, a data directory or a server
	// belongs to another database system than the one expected.
	ErrIdentityMismatch = errors.New("identity mismatch")
	// ErrIntegrity: stored bytes are damaged or were altered.
	ErrIntegrity = errors.New("integrity failure")
	// ErrTransient: a failure that might heal (a store unreachable, a
	// connection dropped) outlasted the retries.
	ErrTransient = errors.New("transient failure")
)

// Sentinel returns a sentinel error with its own message that is also of
// kind for errors.Is.
func Sentinel(kind error, msg string) error {
	return &marked{err: errors.New(msg), kind: kind}
}

// Mark returns err, its message unchanged, as also of kind for errors.Is.
// Mark(nil, kind) is nil.
func Mark(err, kind error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, kind: kind}
}

type marked struct {
	err  error
	kind error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }

// Setting is a setting a library takes from its caller, named in the
// domain's words ("data directory", "recovery_target_time", "repository
// URL"). Each package declares the settings its messages name.
type Setting string

// SettingError is a setting that is missing or wrong. Its message names
// settings in the domain's words; Render words it with other names, such as
// a program's flags.
type SettingError struct {
	// Setting is the setting at fault (the first, where several are).
	Setting Setting
	format  string
	args    []any
	err     error
}

// Settingf returns a SettingError about s, its message formatted as
// fmt.Errorf does; each Setting among args is named in the message by its
// domain name, or by Render's.
func Settingf(s Setting, format string, args ...any) *SettingError {
	return &SettingError{Setting: s, format: format, args: args, err: fmt.Errorf(format, args...)}
}

func (e *SettingError) Error() string { return e.err.Error() }

// Unwrap gives what the message wraps with %w.
func (e *SettingError) Unwrap() []error {
	switch u := e.err.(type) {
	case interface{ Unwrap() error }:
		return []error{u.Unwrap()}
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	}
	return nil
}

// Render is the message with each setting named by name instead.
func (e *SettingError) Render(name func(Setting) string) string {
	args := make([]any, len(e.args))
	for i, a := range e.args {
		if s, ok := a.(Setting); ok {
			a = name(s)
		}
		args[i] = a
	}
	return fmt.Errorf(e.format, args...).Error()
}
