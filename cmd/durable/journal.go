package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/pgjournal"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// journalEnv names the environment variable that gives the journal when
// --journal does not.
const journalEnv = "DURABLE_JOURNAL"

// connectTimeout bounds opening a PostgreSQL journal: a server that does not
// answer is an error, not a hang.
const connectTimeout = 15 * time.Second

// store is what the commands need of a journal; the SQLite and PostgreSQL
// journals are all of it.
type store interface {
	journal.Journal
	journal.Scanner
	journal.Lister
	journal.Deleter
	Close() error
}

// open opens the journal that --journal or $DURABLE_JOURNAL names. A value
// that names no journal is a usage error; one that names a journal that
// cannot be opened (a missing file, a server that does not answer, a schema
// newer than this code) is an error.
//
// Neither backend has a read-only mode: opening an SQLite file migrates it
// when an older release wrote it, as sqlitejournal.Open does; a file that
// does not exist is an error, not created. A PostgreSQL journal is never
// migrated: show works on any schema version, ls, rm and gc need version 2
// and say so. See the package documentation.
func (a *app) open(ctx context.Context) (store, error) {
	spec := a.journal
	switch {
	case spec == "":
		return nil, usagef("no journal: pass --journal sqlite:PATH or --journal postgres://..., or set %s", journalEnv)
	case strings.HasPrefix(spec, "sqlite:"):
		path := strings.TrimPrefix(spec, "sqlite:")
		if path == "" {
			return nil, usagef("--journal sqlite:PATH: the path is empty")
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no journal at %s: the file does not exist", path)
		} else if err != nil {
			return nil, err
		}
		j, err := sqlitejournal.Open(path)
		if err != nil {
			return nil, explainVersion(err)
		}
		return j, nil
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		if _, err := pgxpool.ParseConfig(spec); err != nil {
			return nil, &usageError{fmt.Errorf("--journal: not a PostgreSQL URL: %w", err)}
		}
		ctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		j, err := pgjournal.Open(ctx, spec, pgjournal.WithTable(a.table))
		if err != nil {
			return nil, explainVersion(err)
		}
		// A table that does not exist is no journal: say so now, not as a
		// failed query later. The probe reads no row.
		err = j.Scan(ctx, "\xff\xff\xff\xff", func(string, []byte) error { return nil })
		if isUndefinedTable(err) {
			_ = j.Close()
			return nil, fmt.Errorf("no journal in that database: table %s does not exist (--table names it; the default is durable_journal)", a.table)
		}
		if err != nil {
			_ = j.Close()
			return nil, err
		}
		return j, nil
	}
	return nil, usagef("--journal %q: want sqlite:PATH or postgres://...", redact(spec))
}

// explainVersion rewords the error of a journal a newer release has
// migrated, which this binary refuses to touch.
func explainVersion(err error) error {
	var v *journal.VersionError
	if errors.As(err, &v) {
		return fmt.Errorf("%s has schema version %d, newer than %d, the newest this durable knows: it refuses to use it; install a newer durable (go install github.com/durable-go/durable/cmd/durable@latest)",
			v.Store, v.Version, v.Known)
	}
	return err
}

// explainListing rewords the error of listing executions in a PostgreSQL
// journal whose schema predates the table of executions.
func explainListing(err error) error {
	if isUndefinedTable(err) {
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		return fmt.Errorf("the journal's schema predates version 2, whose table of executions ls, rm and gc read (%s); durable does not migrate PostgreSQL: run pgjournal's Migrate, as applications built with this release do", pgErr.Message)
	}
	return err
}

// isUndefinedTable reports a PostgreSQL error for a table that does not
// exist.
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

// redact hides what follows a scheme's "//" up to the '@', where a password
// would be, in a value that is echoed back.
func redact(spec string) string {
	if i := strings.Index(spec, "://"); i >= 0 {
		if at := strings.Index(spec[i+3:], "@"); at >= 0 {
			return spec[:i+3] + "…" + spec[i+3+at:]
		}
	}
	return spec
}
