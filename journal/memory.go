package journal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is a Journal held in the process's memory. It is safe for concurrent
// use. It survives nothing, so it is meant for tests, for retries inside one
// process, and for sharing one execution between goroutines.
//
// Memory implements every optional interface of this package: [Scanner],
// [Lister] and [Deleter]. Scan, listing and deleting look at every entry or
// execution the journal holds, so they cost time in proportion to its size;
// Get and Put do not.
//
// The zero value is not ready to use; call [NewMemory].
type Memory struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
	execs  [memoryShards]executionShard
}

// memoryShards spreads the keys over locks, so that concurrent Puts of
// different keys seldom wait for one another.
const memoryShards = 32

type memoryShard struct {
	mu sync.RWMutex
	m  map[string][]byte // never changed once stored
	_  [32]byte          // keep neighbouring shards' locks off one cache line
}

// An executionShard holds the executions whose ID hashes to it. A Put holds
// its execution's shard for reading from finding the execution until it has
// counted its entry; deleting holds it for writing, so that it never sees a
// Put half done.
type executionShard struct {
	mu sync.RWMutex
	m  map[string]*memoryExecution
	_  [32]byte
}

// memoryExecution is what Memory knows of one execution. Its counters change
// under its shard's read lock, so they are atomic.
type memoryExecution struct {
	first   int64        // Unix nanoseconds
	last    atomic.Int64 // Unix nanoseconds
	entries atomic.Int64
}

var (
	_ Journal = (*Memory)(nil)
	_ Scanner = (*Memory)(nil)
	_ Lister  = (*Memory)(nil)
	_ Deleter = (*Memory)(nil)
)

// NewMemory returns an empty in-memory journal.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].m = make(map[string][]byte)
		m.execs[i].m = make(map[string]*memoryExecution)
	}
	return m
}

func (m *Memory) shard(key string) *memoryShard {
	return &m.shards[maphash.String(m.seed, key)%memoryShards]
}

func (m *Memory) execShard(id string) *executionShard {
	return &m.execs[maphash.String(m.seed, id)%memoryShards]
}

// executionOf returns the execution of key: its first segment.
func executionOf(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return key
}

// Get implements [Journal]. The returned slice is the caller's to keep.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s := m.shard(key)
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return nil, false, nil
	}
	return clone(v), true, nil
}

// Put implements [Journal]. It keeps its own copy of value. When value is
// stored, Put returns value itself; otherwise a copy of the earlier value, the
// caller's to keep.
func (m *Memory) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id := executionOf(key)
	es := m.execShard(id)
	es.mu.RLock()
	e := es.m[id]
	for e == nil {
		// The execution's first entry: make the execution, then look again,
		// since a deletion may remove it before the read lock is back.
		es.mu.RUnlock()
		es.mu.Lock()
		if es.m[id] == nil {
			now := time.Now().UnixNano()
			e = &memoryExecution{first: now}
			e.last.Store(now)
			es.m[id] = e
		}
		es.mu.Unlock()
		es.mu.RLock()
		e = es.m[id]
	}
	s := m.shard(key)
	s.mu.Lock()
	v, ok := s.m[key]
	if !ok {
		s.m[key] = clone(value)
	}
	s.mu.Unlock()
	if !ok {
		e.entries.Add(1)
		now := time.Now().UnixNano()
		for {
			last := e.last.Load()
			if now <= last || e.last.CompareAndSwap(last, now) {
				break
			}
		}
	}
	es.mu.RUnlock()
	if !ok {
		if value == nil {
			return []byte{}, nil
		}
		return value, nil
	}
	return clone(v), nil
}

// Scan implements [Scanner]. It visits the keys in ascending byte order, and
// hands fn a copy of each value, fn's to keep. It copies the entries under
// prefix before it calls fn, so fn may use the journal, and a Put by fn is not
// visited. It looks at every key the journal holds.
func (m *Memory) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type entry struct {
		key   string
		value []byte
	}
	var found []entry
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		for k, v := range s.m {
			if strings.HasPrefix(k, prefix) {
				found = append(found, entry{k, v})
			}
		}
		s.mu.RUnlock()
	}
	slices.SortFunc(found, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, e := range found {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.key, clone(e.value)); err != nil {
			return err
		}
	}
	return nil
}

// Executions implements [Lister]. The times are those of the Puts that wrote
// the first and the latest entry, to the nanosecond.
func (m *Memory) Executions(ctx context.Context, after string, limit int) ([]Execution, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("journal: executions after %q: limit %d, want at least 1", after, limit)
	}
	var page []Execution
	for i := range m.execs {
		es := &m.execs[i]
		es.mu.RLock()
		for id, e := range es.m {
			// An execution without entries is being made by a Put.
			if (id > after || after == "") && e.entries.Load() > 0 {
				page = append(page, Execution{
					ID:      id,
					First:   time.Unix(0, e.first),
					Last:    time.Unix(0, e.last.Load()),
					Entries: e.entries.Load(),
				})
			}
		}
		es.mu.RUnlock()
	}
	slices.SortFunc(page, func(a, b Execution) int { return cmp.Compare(a.ID, b.ID) })
	if len(page) > limit {
		page = page[:limit:limit]
	}
	return page, nil
}

// DeleteExecution implements [Deleter]. It deletes the execution at once: a
// Put of one of its keys either finishes before or starts after.
func (m *Memory) DeleteExecution(ctx context.Context, id string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if strings.Contains(id, "/") {
		return 0, errInvalidID(id)
	}
	es := m.execShard(id)
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.m[id] == nil {
		return 0, nil
	}
	delete(es.m, id)
	return m.deleteKeys(func(exec string) bool { return exec == id }), nil
}

// DeleteOlder implements [Deleter]. It deletes each execution at once, as
// DeleteExecution does, and looks at every key the journal holds.
func (m *Memory) DeleteOlder(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cut := before.UnixNano()
	deleted := 0
	for i := range m.execs {
		es := &m.execs[i]
		es.mu.Lock()
		old := map[string]bool{}
		for id, e := range es.m {
			if e.entries.Load() > 0 && e.last.Load() < cut {
				old[id] = true
				delete(es.m, id)
			}
		}
		if len(old) > 0 {
			m.deleteKeys(func(exec string) bool { return old[exec] })
		}
		es.mu.Unlock()
		deleted += len(old)
	}
	return deleted, nil
}

// deleteKeys deletes every key whose execution del reports, and returns how
// many it deleted. The caller holds the executions' shard for writing.
func (m *Memory) deleteKeys(del func(exec string) bool) int64 {
	var n int64
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for k := range s.m {
			if del(executionOf(k)) {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

func errInvalidID(id string) error {
	return fmt.Errorf("journal: delete execution %q: %w", id, errSlashInID)
}

var errSlashInID = errors.New("an execution ID holds no '/'")

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
