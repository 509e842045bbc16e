// Package journal defines the storage interface of durable's checkpoints and an
// in-memory implementation of it.
//
// A [Journal] maps opaque keys to opaque values. Keys are write-once: the first
// [Journal.Put] for a key wins and every later Put for that key returns the value
// that won. That single rule is what lets several workers run one execution at
// once and still agree on every result.
//
// Backends that can do more implement optional interfaces, which durable discovers
// with a type assertion, the way [io.Copy] discovers [io.WriterTo]:
//
//   - [Scanner]: list every entry under a key prefix in one call, so that resuming
//     a large fan-out issues one query instead of one per branch.
//   - [Lister]: list the executions the journal holds, page by page, with the
//     times of their first and latest writes and their number of entries.
//   - [Deleter]: delete one execution's entries, or every execution last
//     written before a time (retention).
//
// durable itself uses only Scanner; Lister and Deleter serve tools and
// operators. [Memory] implements all of them.
//
// The package journaltest checks any Journal against this contract.
package journal

import (
	"context"
	"errors"
	"fmt"
)

// Journal stores checkpoints: opaque values under opaque keys. Keys are
// write-once. Implementations must be safe for concurrent use.
type Journal interface {
	// Get returns the value stored under key, with ok reporting whether there
	// is one.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Put stores value unless key already holds one. It returns what key holds
	// afterwards: the earlier value wins, and the caller must use the returned one.
	// When Put returns a nil error the value is durable: a later Get, from this
	// process or another, returns it.
	Put(ctx context.Context, key string, value []byte) (stored []byte, err error)
}

// Scanner is an optional interface for journals that can list every entry whose
// key starts with prefix in a single call. durable uses it, when present, to
// restore a combinator's branches in one round trip.
//
// Scan calls fn for each entry, in any order, and stops at the first error fn
// returns, returning it. fn must not retain value after it returns unless the
// implementation documents otherwise; durable copies what it keeps.
type Scanner interface {
	Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error
}

// ErrClosed is returned by backends used after Close.
var ErrClosed = errors.New("journal: closed")

// A VersionError reports a journal whose storage a newer version of its
// backend has migrated to a schema the running code does not know. The code
// refuses to write to it; upgrade the code.
type VersionError struct {
	Store   string // what holds the journal, named: a file, a table
	Version int    // the schema version the store has
	Known   int    // the newest schema version the running code knows
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("journal: %s has schema version %d, newer than version %d, the newest this code knows; upgrade it before writing there",
		e.Store, e.Version, e.Known)
}
