package pgjournal

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/durable-go/durable/journal"
)

// PostgreSQL error codes the journal treats specially.
const (
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeUndefinedTable       = "42P01"
	codeInvalidSchemaName    = "3F000"
	codeProgramLimitExceeded = "54000"
)

// opError wraps err, which an operation on key failed with, naming both. Every
// error a Journal returns passes through it, so it is the one place where
// driver errors are mapped: the context's own error and [journal.ErrClosed]
// stay matchable with errors.Is, and the server errors a caller can act on get
// a hint.
func (j *Journal) opError(op, key string, err error) error {
	return fmt.Errorf("pgjournal: %s %q: %w", op, key, j.interpretError(err))
}

// interpretError maps an error of the driver to what the journal reports.
func (j *Journal) interpretError(err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, journal.ErrClosed):
		return err
	case isClosedPool(err):
		return fmt.Errorf("%w (%w)", journal.ErrClosed, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeUndefinedTable:
			return fmt.Errorf("a table of journal %s does not exist; call Migrate first: %w", j.table, err)
		case codeInvalidSchemaName:
			return fmt.Errorf("the schema of table %s does not exist; Migrate creates the table but not the schema: %w", j.table, err)
		case codeProgramLimitExceeded:
			return fmt.Errorf("key or value too large for PostgreSQL (keys are indexed and must stay under about 2.7 kB): %w", err)
		}
	}
	return err
}

// isClosedPool reports whether err comes from a pgxpool.Pool that was closed:
// the journal was given a pool its owner has since closed, or Close ran while
// the call was under way. pgxpool passes on the error of the pool library it
// is built on.
func isClosedPool(err error) bool {
	return errors.Is(err, puddle.ErrClosedPool)
}

// retryable reports whether a batch that failed with err may succeed when run
// again unchanged: the server aborted it to resolve a conflict with another
// transaction.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) &&
		(pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected)
}

// rejected reports whether the server refused a statement for its content
// rather than failing as a whole (a lost connection, a cancelled context): then
// one bad Put in a batch must not fail the others.
func rejected(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !retryable(err)
}
