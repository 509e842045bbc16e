package sqlitejournal

import (
	"fmt"
	"time"
)

// Option configures [Open].
type Option interface {
	apply(*config)
}

// Synchronous is SQLite's synchronous setting, which decides when a commit
// waits for the disk. See [WithSynchronous].
type Synchronous int

const (
	// SynchronousFull syncs the write-ahead log on every commit: a Put that
	// returned has survived a power cut. It is the default.
	SynchronousFull Synchronous = iota
	// SynchronousNormal syncs only when the write-ahead log is checkpointed
	// into the database file. Commits are faster, and a crash of the process
	// loses nothing, but a power cut or an operating-system crash may roll
	// back the last commits. The file is never corrupted either way.
	SynchronousNormal
)

func (s Synchronous) String() string {
	switch s {
	case SynchronousFull:
		return "FULL"
	case SynchronousNormal:
		return "NORMAL"
	}
	return fmt.Sprintf("Synchronous(%d)", int(s))
}

type config struct {
	synchronous Synchronous
	busyTimeout time.Duration
	groupCommit bool
	maxBatch    int
	maxWait     time.Duration
	deleteBatch int
}

func defaultConfig() config {
	return config{
		synchronous: SynchronousFull,
		busyTimeout: 5 * time.Second,
		groupCommit: true,
		maxBatch:    256,
		maxWait:     0,
		deleteBatch: 1000,
	}
}

func (c *config) validate() error {
	switch {
	case c.synchronous != SynchronousFull && c.synchronous != SynchronousNormal:
		return fmt.Errorf("WithSynchronous(%v): want SynchronousFull or SynchronousNormal", c.synchronous)
	case c.busyTimeout < 0:
		return fmt.Errorf("WithBusyTimeout(%v): must not be negative", c.busyTimeout)
	case c.busyTimeout > time.Duration(1<<31-1)*time.Millisecond:
		return fmt.Errorf("WithBusyTimeout(%v): too long", c.busyTimeout)
	case c.maxBatch < 1:
		return fmt.Errorf("WithMaxBatch(%d): must be at least 1", c.maxBatch)
	case c.maxWait < 0:
		return fmt.Errorf("WithMaxWait(%v): must not be negative", c.maxWait)
	case c.deleteBatch < 1:
		return fmt.Errorf("WithDeleteBatch(%d): must be at least 1", c.deleteBatch)
	}
	return nil
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithSynchronous chooses when commits wait for the disk. The default,
// [SynchronousFull], makes every returned Put durable against power loss;
// [SynchronousNormal] trades that for faster commits and keeps durability
// against process crashes only.
func WithSynchronous(s Synchronous) Option {
	return optionFunc(func(c *config) { c.synchronous = s })
}

// WithBusyTimeout sets how long a statement waits for a lock held by another
// connection (another process, usually) before it fails with SQLite's "database
// is locked". It is applied, in milliseconds, as PRAGMA busy_timeout. The
// default is 5 seconds; 0 fails at once.
func WithBusyTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.busyTimeout = d })
}

// WithGroupCommit turns group commit on (the default) or off. With it off,
// every Put runs its own write transaction, paying one disk sync each.
func WithGroupCommit(on bool) Option {
	return optionFunc(func(c *config) { c.groupCommit = on })
}

// WithMaxBatch bounds how many Puts group commit writes in one transaction.
// The default is 256; n must be at least 1.
func WithMaxBatch(n int) Option {
	return optionFunc(func(c *config) { c.maxBatch = n })
}

// WithMaxWait sets how long group commit waits for more Puts to fill a batch
// before it commits a batch smaller than the maximum. The default, 0, commits
// whatever is queued at once: a lone Put is not delayed, and Puts that arrive
// while a commit is under way form the next batch. A small wait (a fraction
// of the disk's sync time) can raise throughput when Puts trickle in, at the
// cost of that much latency on each.
func WithMaxWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxWait = d })
}

// WithDeleteBatch bounds how many entries [Journal.DeleteExecution] and
// [Journal.DeleteOlder] delete in one write transaction. Each transaction
// holds the file's write lock, which every Put waits for; a smaller batch
// keeps that wait shorter, a larger one deletes faster. The default is 1,000
// (a few milliseconds); n must be at least 1.
func WithDeleteBatch(n int) Option {
	return optionFunc(func(c *config) { c.deleteBatch = n })
}
