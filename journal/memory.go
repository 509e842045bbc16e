package journal

import (
	"context"
	"sync"
)

// Memory is a Journal held in the process's memory. It is safe for concurrent
// use. It survives nothing, so it is meant for tests, for retries inside one
// process, and for sharing one execution between goroutines.
//
// The zero value is not ready to use; call [NewMemory].
type Memory struct {
	mu sync.RWMutex
	m  map[string][]byte
}

var _ Journal = (*Memory)(nil)

// NewMemory returns an empty in-memory journal.
func NewMemory() *Memory {
	return &Memory{m: make(map[string][]byte)}
}

// Get implements [Journal]. The returned slice is the caller's to keep.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	m.mu.RLock()
	v, ok := m.m[key]
	m.mu.RUnlock()
	if !ok {
		return nil, false, nil
	}
	return clone(v), true, nil
}

// Put implements [Journal]. It keeps its own copy of value.
func (m *Memory) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	v, ok := m.m[key]
	if !ok {
		v = clone(value)
		m.m[key] = v
	}
	m.mu.Unlock()
	return clone(v), nil
}

// Len reports how many keys the journal holds.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
