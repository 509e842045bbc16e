package journal

import (
	"context"
	"hash/maphash"
	"sync"
)

// Memory is a Journal held in the process's memory. It is safe for concurrent
// use. It survives nothing, so it is meant for tests, for retries inside one
// process, and for sharing one execution between goroutines.
//
// The zero value is not ready to use; call [NewMemory].
type Memory struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
}

// memoryShards spreads the keys over locks, so that concurrent Puts of
// different keys seldom wait for one another.
const memoryShards = 32

type memoryShard struct {
	mu sync.RWMutex
	m  map[string][]byte // never changed once stored
	_  [32]byte          // keep neighbouring shards' locks off one cache line
}

var _ Journal = (*Memory)(nil)

// NewMemory returns an empty in-memory journal.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].m = make(map[string][]byte)
	}
	return m
}

func (m *Memory) shard(key string) *memoryShard {
	return &m.shards[maphash.String(m.seed, key)%memoryShards]
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
	s := m.shard(key)
	s.mu.Lock()
	v, ok := s.m[key]
	if !ok {
		s.m[key] = clone(value)
	}
	s.mu.Unlock()
	if !ok {
		if value == nil {
			return []byte{}, nil
		}
		return value, nil
	}
	return clone(v), nil
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
