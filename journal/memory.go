package journal

import (
	"context"
	"sync"
)

// Memory is a Journal held in the process's memory. It is safe for concurrent
// use. It survives nothing, so it is meant for tests, for retries inside one
// process, and for sharing one execution between goroutines.
//
// The zero value is an empty journal ready to use.
type Memory struct {
	m sync.Map // string → []byte, never changed once stored
}

var _ Journal = (*Memory)(nil)

// NewMemory returns an empty in-memory journal.
func NewMemory() *Memory {
	return &Memory{}
}

// Get implements [Journal]. The returned slice is the caller's to keep.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	v, ok := m.m.Load(key)
	if !ok {
		return nil, false, nil
	}
	return clone(v.([]byte)), true, nil
}

// Put implements [Journal]. It keeps its own copy of value.
func (m *Memory) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, _ := m.m.LoadOrStore(key, clone(value))
	return clone(v.([]byte)), nil
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
