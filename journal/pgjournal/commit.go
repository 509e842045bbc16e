package pgjournal

import (
	"bytes"
	"context"
	"sync/atomic"
	"time"
)

// maxBatchBytes closes a batch early once its values add up to this much, so
// that a batch of large values stays far below PostgreSQL's 1 GB limit on one
// parameter. One value larger than this still makes a batch of its own.
const maxBatchBytes = 16 << 20

// A request is one Put waiting for the committer. It carries the Put's context
// so that the committer can leave out Puts whose caller has gone, and abandon a
// batch nobody waits for.
type request struct {
	ctx   context.Context
	key   string
	value []byte
	// done receives the outcome. Its buffer of one lets the committer answer
	// without waiting for a caller that has stopped listening.
	done chan result
}

type result struct {
	stored []byte
	err    error
}

// runCommitter is the committer goroutine: it gathers concurrent Puts into
// batches and writes each batch in one transaction, until Close.
func (j *Journal) runCommitter() {
	defer j.committer.Done()
	var (
		batch  []*request
		target = 1 // the size of the previous batch
		took   time.Duration
	)
	for {
		select {
		case r := <-j.reqs:
			batch = append(batch[:0], r)
		case <-j.closing:
			return
		}
		batch = j.gather(batch, target, min(j.cfg.maxWait, took))
		start := time.Now()
		j.commitBatch(batch)
		took = time.Since(start)
		target = len(batch)
		clear(batch) // let the requests be collected while the committer idles
	}
}

// gather adds Puts to batch, which holds the first one. It takes every Put
// already waiting, then, while fewer than target have arrived, waits for more
// until wait has passed since the first. A full batch, or one whose values
// reach maxBatchBytes, is returned at once.
//
// The committer passes the shorter of maxWait and the time the previous batch
// took to commit: waiting longer than a commit takes would cost more latency
// than committing what is there and starting the next batch.
func (j *Journal) gather(batch []*request, target int, wait time.Duration) []*request {
	var (
		size  = len(batch[0].value)
		timer *time.Timer
		start = time.Now()
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for len(batch) < j.cfg.maxBatch && size < maxBatchBytes {
		select {
		case r := <-j.reqs:
			batch = append(batch, r)
			size += len(r.value)
			continue
		default:
		}
		if len(batch) >= target || wait <= 0 {
			return batch
		}
		if timer == nil {
			timer = time.NewTimer(wait - time.Since(start))
		}
		select {
		case r := <-j.reqs:
			batch = append(batch, r)
			size += len(r.value)
		case <-timer.C:
			return batch
		case <-j.closing:
			return batch
		}
	}
	return batch
}

// commitBatch writes the batch in one transaction and answers every request.
// Requests whose context is done are answered at once and left out. Of several
// requests for one key the first in the batch is written, and all of them get
// what the key holds after the commit.
func (j *Journal) commitBatch(batch []*request) {
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}

	index := make(map[string]int, len(live)) // where each key is in keys
	keys := make([][]byte, 0, len(live))
	values := make([][]byte, 0, len(live))
	for _, r := range live {
		if _, ok := index[r.key]; ok {
			continue // a later Put of a key in the batch loses to the first
		}
		index[r.key] = len(keys)
		keys = append(keys, []byte(r.key))
		values = append(values, r.value)
	}

	ctx, stop := batchContext(live)
	stored, err := j.write(ctx, keys, values)
	stop()

	if stored == nil && len(keys) > 1 && rejected(err) {
		// The server refused the INSERT for something in it, say a key too
		// long for the index: write the Puts one by one so that only the
		// guilty ones fail.
		for _, r := range live {
			v, err := j.putOne(r.ctx, r.key, r.value)
			r.done <- result{stored: v, err: err}
		}
		return
	}

	var handed []bool // keys whose value went out, if any key repeats
	if len(keys) < len(live) {
		handed = make([]bool, len(keys))
	}
	for _, r := range live {
		if stored == nil {
			r.done <- result{err: err}
			continue
		}
		i := index[r.key]
		v := stored[i]
		switch {
		case v == nil && err != nil:
			r.done <- result{err: err} // the read-back failed
		case v == nil:
			r.done <- result{err: errMissing}
		case handed != nil && handed[i]:
			// Each caller owns the slice it gets.
			r.done <- result{stored: bytes.Clone(v)}
		default:
			if handed != nil {
				handed[i] = true
			}
			// v is this request's own copy of its value when its key was
			// inserted, and a fresh slice when it was read back.
			r.done <- result{stored: v}
		}
	}
}

// batchContext returns the context a batch is written with. It carries no
// request's deadline or values, because the batch serves all of them, and it
// is cancelled once every request's context is done: then nobody waits for
// the batch any more. stop releases it.
func batchContext(reqs []*request) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var waiting atomic.Int64
	waiting.Store(int64(len(reqs)))
	stops := make([]func() bool, len(reqs))
	for i, r := range reqs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}
