package pgjournal

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Defaults of the options.
const (
	defaultTable    = "durable_journal"
	defaultMaxBatch = 256
	defaultMaxWait  = 500 * time.Microsecond

	defaultDeleteBatch = 10_000
)

// maxIdentifier is the longest identifier PostgreSQL keeps without truncating
// it (NAMEDATALEN - 1 bytes).
const maxIdentifier = 63

// An Option configures a [Journal] made by [New] or [Open].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	table       string
	maxBatch    int
	maxWait     time.Duration
	groupCommit bool
	deleteBatch int
}

func defaultConfig() config {
	return config{
		table:       defaultTable,
		maxBatch:    defaultMaxBatch,
		maxWait:     defaultMaxWait,
		groupCommit: true,
		deleteBatch: defaultDeleteBatch,
	}
}

// WithTable names the table that holds the checkpoints: "name" for a table found
// through the search_path, or "schema.name". Each part is quoted, so it is taken
// verbatim, case included: WithTable("Journal") is the table "Journal", not
// journal. The default is "durable_journal".
func WithTable(name string) Option {
	return optionFunc(func(c *config) { c.table = name })
}

// WithMaxBatch sets how many Puts one group commit may hold: n >= 1. The
// default is 256. A batch also closes early once its values add
// up to a few megabytes.
func WithMaxBatch(n int) Option {
	return optionFunc(func(c *config) { c.maxBatch = n })
}

// WithMaxWait bounds how long the committer waits for more Puts before it
// commits a batch: d >= 0. It waits only when the previous batch held more Puts
// than have arrived, and never longer than the previous commit took, so a Put
// that has no concurrent company is not delayed. Zero turns waiting off: a
// batch is then whatever queued while the previous one committed. The default
// is 500µs.
func WithMaxWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxWait = d })
}

// WithGroupCommit turns group commit on (the default) or off. Off, every Put is
// its own transaction and round trip, as a comparison point or for callers that
// never write concurrently.
func WithGroupCommit(on bool) Option {
	return optionFunc(func(c *config) { c.groupCommit = on })
}

// WithDeleteBatch bounds how many entries [Journal.DeleteExecution] and
// [Journal.DeleteOlder] delete in one statement, each its own transaction:
// n >= 1. Deleting takes no lock that other executions' Puts wait for, but a
// smaller batch keeps each transaction, and the dead rows VACUUM must clean
// up between two of its runs, smaller. The default is 10,000.
func WithDeleteBatch(n int) Option {
	return optionFunc(func(c *config) { c.deleteBatch = n })
}

// validate checks c and returns the table's name.
func (c *config) validate() (pgx.Identifier, error) {
	if c.maxBatch < 1 {
		return nil, fmt.Errorf("pgjournal: WithMaxBatch(%d): want at least 1", c.maxBatch)
	}
	if c.maxWait < 0 {
		return nil, fmt.Errorf("pgjournal: WithMaxWait(%v): want zero or more", c.maxWait)
	}
	if c.deleteBatch < 1 {
		return nil, fmt.Errorf("pgjournal: WithDeleteBatch(%d): want at least 1", c.deleteBatch)
	}
	ident, err := parseTable(c.table)
	if err != nil {
		return nil, fmt.Errorf("pgjournal: WithTable(%q): %w", c.table, err)
	}
	return ident, nil
}

// parseTable splits name into an optional schema and a table and checks each.
func parseTable(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, errors.New(`want "table" or "schema.table"`)
	}
	for _, p := range parts {
		switch {
		case p == "":
			return nil, errors.New("empty name")
		case len(p) > maxIdentifier:
			return nil, fmt.Errorf("%q is longer than %d bytes", p, maxIdentifier)
		case strings.ContainsRune(p, 0):
			return nil, errors.New("NUL byte in name")
		case !utf8.ValidString(p):
			return nil, errors.New("name is not valid UTF-8")
		}
	}
	return pgx.Identifier(parts), nil
}
