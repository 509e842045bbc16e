package durable_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/journaltest"
)

// errInjected is the failure a faultJournal reports.
var errInjected = errors.New("injected journal fault")

// faultJournal wraps a journal.Journal and misbehaves on request: it fails Gets
// or Puts (all of them, those whose key matches a predicate, or every Put after
// the N-th), adds latency, drops writes while reporting success, and counts the
// calls made for each key. Every knob can be changed between runs, and is safe to
// change while a run is in flight.
//
// A faultJournal is not itself a journal.Journal: journal returns the view the
// engine sees, which implements journal.Scanner exactly when the inner journal
// does, so that both the per-key and the bulk restore paths can be exercised.
type faultJournal struct {
	inner journal.Journal

	mu         sync.Mutex
	getErr     error
	getMatch   func(key string) bool // nil: every key
	putErr     error
	putMatch   func(key string) bool // nil: every key
	putsBefore int                   // with putAfterErr: Puts allowed before the failures start
	putAfter   error                 // fails every Put after the first putsBefore
	putsSeen   int                   // Puts that reached the knob above
	latency    time.Duration
	slowMatch  func(key string) bool // nil: every key
	drop       func(key string) bool
	onStored   func(key string, value []byte) // called after each successful Put

	gets    map[string]int // Get calls per key (Scan calls count under their prefix)
	puts    map[string]int // Put calls per key
	okPuts  map[string]int // Put calls per key that returned success
	dropped map[string]int // Put calls per key that were dropped
	keys    []string       // keys in the order they were first stored
	stored  map[string]bool
}

func newFaultJournal(inner journal.Journal) *faultJournal {
	return &faultJournal{
		inner:   inner,
		gets:    make(map[string]int),
		puts:    make(map[string]int),
		okPuts:  make(map[string]int),
		dropped: make(map[string]int),
		stored:  make(map[string]bool),
	}
}

// journal returns the journal the engine should be given.
func (f *faultJournal) journal() journal.Journal {
	if s, ok := f.inner.(journal.Scanner); ok {
		return faultScanner{f, s}
	}
	return faultView{f}
}

// in returns a context whose durable scope is executionID in f.
func (f *faultJournal) in(ctx context.Context, executionID string) context.Context {
	return durable.WithJournal(ctx, f.journal(), executionID)
}

// failGets makes Get (and Scan) fail with err on the keys match accepts, or on
// every key when match is nil. A nil err turns the fault off.
func (f *faultJournal) failGets(err error, match func(key string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getErr, f.getMatch = err, match
}

// failPuts makes Put fail with err on the keys match accepts, or on every key when
// match is nil. A nil err turns the fault off.
func (f *faultJournal) failPuts(err error, match func(key string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putErr, f.putMatch = err, match
}

// failPutsAfter lets n more Puts through, then fails every later one with err. A
// nil err turns the fault off.
func (f *faultJournal) failPutsAfter(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putsBefore, f.putAfter, f.putsSeen = n, err, 0
}

// setLatency delays the Gets, Puts and Scans of the keys (or prefixes) match
// accepts, or of every key when match is nil, by d or until their context ends.
func (f *faultJournal) setLatency(d time.Duration, match func(key string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency, f.slowMatch = d, match
}

// dropPuts makes Put on the keys match accepts report success without storing
// anything. A nil match turns the fault off.
func (f *faultJournal) dropPuts(match func(key string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop = match
}

// onPut sets a hook called, without f's lock, after each Put that returns
// success (dropped ones included), with the value the key holds.
func (f *faultJournal) onPut(hook func(key string, value []byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onStored = hook
}

// clear turns every fault off; the counters are kept.
func (f *faultJournal) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getErr, f.getMatch, f.putErr, f.putMatch = nil, nil, nil, nil
	f.putAfter, f.putsBefore, f.putsSeen = nil, 0, 0
	f.latency, f.slowMatch, f.drop, f.onStored = 0, nil, nil, nil
}

func (f *faultJournal) getsOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[key]
}

func (f *faultJournal) putsOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts[key]
}

func (f *faultJournal) okPutsOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.okPuts[key]
}

// storedKeys returns the keys stored through f, in the order they were first
// stored.
func (f *faultJournal) storedKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keys)
}

func (f *faultJournal) wait(ctx context.Context, key string) error {
	f.mu.Lock()
	d := f.latency
	if f.slowMatch != nil && !f.slowMatch(key) {
		d = 0
	}
	f.mu.Unlock()
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func (f *faultJournal) get(ctx context.Context, key string) ([]byte, bool, error) {
	f.mu.Lock()
	f.gets[key]++
	err := f.getErr
	if err != nil && f.getMatch != nil && !f.getMatch(key) {
		err = nil
	}
	f.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	if err := f.wait(ctx, key); err != nil {
		return nil, false, err
	}
	return f.inner.Get(ctx, key)
}

func (f *faultJournal) put(ctx context.Context, key string, value []byte) ([]byte, error) {
	f.mu.Lock()
	f.puts[key]++
	err := f.putErr
	if err != nil && f.putMatch != nil && !f.putMatch(key) {
		err = nil
	}
	if err == nil && f.putAfter != nil {
		if f.putsSeen >= f.putsBefore {
			err = f.putAfter
		}
		f.putsSeen++
	}
	drop := f.drop != nil && f.drop(key)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := f.wait(ctx, key); err != nil {
		return nil, err
	}
	var stored []byte
	if drop {
		stored = slices.Clone(value)
	} else {
		stored, err = f.inner.Put(ctx, key, value)
		if err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	f.okPuts[key]++
	if drop {
		f.dropped[key]++
	} else if !f.stored[key] {
		f.stored[key] = true
		f.keys = append(f.keys, key)
	}
	hook := f.onStored
	f.mu.Unlock()
	if hook != nil {
		hook(key, stored)
	}
	return stored, nil
}

type faultView struct{ f *faultJournal }

func (v faultView) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return v.f.get(ctx, key)
}

func (v faultView) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	return v.f.put(ctx, key, value)
}

type faultScanner struct {
	f *faultJournal
	s journal.Scanner
}

func (v faultScanner) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return v.f.get(ctx, key)
}

func (v faultScanner) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	return v.f.put(ctx, key, value)
}

// Scan counts as a Get of prefix and fails when a Get of prefix would.
func (v faultScanner) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	f := v.f
	f.mu.Lock()
	f.gets[prefix]++
	err := f.getErr
	if err != nil && f.getMatch != nil && !f.getMatch(prefix) {
		err = nil
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if err := f.wait(ctx, prefix); err != nil {
		return err
	}
	return v.s.Scan(ctx, prefix, fn)
}

var (
	_ journal.Journal = faultView{}
	_ journal.Scanner = faultScanner{}
)

// getPut hides every method of a journal but Get and Put, so that the engine
// restores branch by branch, as it does with a journal that cannot scan.
type getPut struct{ journal.Journal }

// plainMemory returns a journal.Memory seen through getPut.
func plainMemory() journal.Journal { return getPut{journal.NewMemory()} }

// scanMemory is a journal.Memory whose Scan goes through Get, key by key, and
// which can list its keys. It remembers every key stored through its own Put.
type scanMemory struct {
	*journal.Memory

	mu   sync.Mutex
	keys map[string]bool
}

var (
	_ journal.Journal = (*scanMemory)(nil)
	_ journal.Scanner = (*scanMemory)(nil)
)

func newScanMemory() *scanMemory {
	return &scanMemory{Memory: journal.NewMemory(), keys: make(map[string]bool)}
}

func (m *scanMemory) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	stored, err := m.Memory.Put(ctx, key, value)
	if err == nil {
		m.mu.Lock()
		m.keys[key] = true
		m.mu.Unlock()
	}
	return stored, err
}

// Scan implements journal.Scanner, in key order.
func (m *scanMemory) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, key := range m.Keys(prefix) {
		value, ok, err := m.Get(ctx, key)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := fn(key, value); err != nil {
			return err
		}
	}
	return nil
}

// Keys returns the stored keys that start with prefix, sorted.
func (m *scanMemory) Keys(prefix string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.keys {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// copyJournal returns a new scanMemory holding what src holds, except that the
// keys in replace hold the given bytes instead.
func copyJournal(t *testing.T, src *scanMemory, replace map[string][]byte) *scanMemory {
	t.Helper()
	dst := newScanMemory()
	for _, k := range src.Keys("") {
		v, ok, err := src.Get(t.Context(), k)
		require.NoError(t, err)
		require.True(t, ok)
		if r, found := replace[k]; found {
			v = r
		}
		_, err = dst.Put(t.Context(), k, v)
		require.NoError(t, err)
	}
	for k, v := range replace {
		_, err := dst.Put(t.Context(), k, v) // no effect when k was copied above
		require.NoError(t, err)
	}
	return dst
}

// With no fault set, the wrappers are journals like any other.
func TestFaultJournalConformance(t *testing.T) {
	t.Run("scanMemory", func(t *testing.T) {
		journaltest.Run(t, func() journal.Journal { return newScanMemory() })
	})
	t.Run("faultJournal", func(t *testing.T) {
		journaltest.Run(t, func() journal.Journal { return newFaultJournal(plainMemory()).journal() })
	})
	t.Run("faultJournalScanner", func(t *testing.T) {
		journaltest.Run(t, func() journal.Journal { return newFaultJournal(newScanMemory()).journal() })
	})
}

// The wrapper itself must behave: faults where asked, a faithful journal
// otherwise.
func TestFaultJournal(t *testing.T) {
	ctx := t.Context()
	t.Run("Passthrough", func(t *testing.T) {
		f := newFaultJournal(newScanMemory())
		j := f.journal()
		_, ok := j.(journal.Scanner)
		require.True(t, ok, "a scannable inner journal gives a scannable view")
		got, err := j.Put(ctx, "a/1", []byte("x"))
		require.NoError(t, err)
		require.Equal(t, []byte("x"), got)
		got, err = j.Put(ctx, "a/1", []byte("y"))
		require.NoError(t, err)
		require.Equal(t, []byte("x"), got, "write-once")
		v, ok, err := j.Get(ctx, "a/1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []byte("x"), v)
		require.Equal(t, 2, f.putsOf("a/1"))
		require.Equal(t, 1, f.getsOf("a/1"))
		require.Equal(t, []string{"a/1"}, f.storedKeys())

		_, ok = newFaultJournal(plainMemory()).journal().(journal.Scanner)
		require.False(t, ok, "a plain inner journal gives a view without Scan")
	})
	t.Run("FailByKey", func(t *testing.T) {
		f := newFaultJournal(plainMemory())
		j := f.journal()
		f.failPuts(errInjected, func(k string) bool { return k == "bad" })
		f.failGets(errInjected, func(k string) bool { return k == "bad" })
		_, err := j.Put(ctx, "bad", []byte("x"))
		require.ErrorIs(t, err, errInjected)
		_, _, err = j.Get(ctx, "bad")
		require.ErrorIs(t, err, errInjected)
		_, err = j.Put(ctx, "good", []byte("x"))
		require.NoError(t, err)
		f.clear()
		_, ok, err := j.Get(ctx, "bad")
		require.NoError(t, err)
		require.False(t, ok, "a failed Put stores nothing")
	})
	t.Run("FailAfterN", func(t *testing.T) {
		f := newFaultJournal(plainMemory())
		j := f.journal()
		f.failPutsAfter(2, errInjected)
		for i, k := range []string{"a", "b", "c", "d"} {
			_, err := j.Put(ctx, k, []byte(k))
			if i < 2 {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, errInjected)
			}
		}
		require.Equal(t, []string{"a", "b"}, f.storedKeys())
	})
	t.Run("Drop", func(t *testing.T) {
		f := newFaultJournal(plainMemory())
		j := f.journal()
		f.dropPuts(func(k string) bool { return k == "lost" })
		got, err := j.Put(ctx, "lost", []byte("x"))
		require.NoError(t, err)
		require.Equal(t, []byte("x"), got)
		_, ok, err := j.Get(ctx, "lost")
		require.NoError(t, err)
		require.False(t, ok)
	})
	t.Run("Latency", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFaultJournal(newScanMemory())
			f.setLatency(time.Second, func(k string) bool { return k == "slow" })
			start := time.Now()
			_, err := f.journal().Put(t.Context(), "fast", []byte("v"))
			require.NoError(t, err)
			require.Zero(t, time.Since(start))
			_, err = f.journal().Put(t.Context(), "slow", []byte("v"))
			require.NoError(t, err)
			require.Equal(t, time.Second, time.Since(start))
			cctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, _, err = f.journal().Get(cctx, "slow")
			require.ErrorIs(t, err, context.Canceled)
		})
	})
}
