package main

import (
	"strings"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/repo"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/scheduler"
)

// settingWords is how this command line takes a setting the packages name
// in the domain's words (a fault.Setting): name replaces the domain's name
// in a message that names the setting; advice follows a message about the
// setting that does not name it.
type settingWords struct {
	name, advice string
}

// settingFlags are the settings the packages name, as walship's flags and
// environment variables give them.
var settingFlags = map[fault.Setting]settingWords{
	storage.RepositoryURL:             {name: "repository URL (WALSHIP_REPO or --repo)"},
	pg.DataDir:                        {name: "data directory (PGDATA or --pgdata)", advice: ": set PGDATA or --pgdata"},
	pg.Connection:                     {name: "PostgreSQL connection settings (PGHOST, PGPORT, PGUSER or --pghost, --pgport, --pguser)"},
	codec.DecryptionKey:               {name: "decryption key (WALSHIP_ENCRYPTION_KEY_FILE or --encryption-key-file: the age identity file)"},
	codec.EncryptionRecipient:         {name: "encryption recipient (WALSHIP_ENCRYPTION_RECIPIENT or --encryption-recipient)"},
	repo.SettingRepoKeyFile:           {advice: " (WALSHIP_REPO_KEY_FILE or --repo-key-file)"},
	restore.SettingTargetTime:         {name: "--target-time"},
	restore.SettingTargetLSN:          {name: "--target-lsn"},
	restore.SettingTargetXID:          {name: "--target-xid"},
	restore.SettingTargetName:         {name: "--target-name"},
	restore.SettingTargetImmediate:    {name: "--target-immediate"},
	restore.SettingExclusive:          {name: "--exclusive"},
	restore.SettingTargetTimeline:     {name: "--target-timeline"},
	restore.SettingTargetAction:       {name: "--target-action"},
	restore.SettingDeleteExisting:     {name: "--delete-existing"},
	restore.SettingTablespaceLocation: {name: "--tablespace OID=DIR"},
	scheduler.SettingKeep:             {name: "--keep"},
	scheduler.SettingRecoveryWindow:   {name: "--recovery-window"},
	scheduler.SettingIncompleteGrace:  {name: "--incomplete-grace"},
}

// explain is err's message as this command line words it: each setting a
// package's message names is named by its flag (and variable), and a
// message about a setting it does not name gets the flag as advice.
func explain(err error) string {
	msg := err.Error()
	for _, se := range settingErrors(err, nil) {
		named := false
		text := se.Render(func(s fault.Setting) string {
			named = true
			if w := settingFlags[s]; w.name != "" {
				return w.name
			}
			return string(s)
		})
		if !named {
			text += settingFlags[se.Setting].advice
		}
		msg = strings.Replace(msg, se.Error(), text, 1)
	}
	return msg
}

// explained is err with explain's message, still matching what err
// matches.
func explained(err error) error {
	if err == nil {
		return nil
	}
	return &explainedError{msg: explain(err), err: err}
}

type explainedError struct {
	msg string
	err error
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.err }

// settingErrors are the SettingErrors in err's tree, outer ones first.
func settingErrors(err error, out []*fault.SettingError) []*fault.SettingError {
	if err == nil {
		return out
	}
	if se, ok := err.(*fault.SettingError); ok {
		out = append(out, se)
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = settingErrors(u.Unwrap(), out)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = settingErrors(e, out)
		}
	}
	return out
}
