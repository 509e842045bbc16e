package durable

// The journal side of the engine: opening a journaled batch, restoring its
// branches in their original completion order, and journaling or replaying the
// decision of a final combinator.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

// open prepares a journaled batch: it journals the head (start time and branch
// set), or checks the journaled one, and returns the journaled decision of a
// final combinator, if any. Restored branches are counted, in their original
// completion order.
func (b *batch[T]) open(ctx context.Context, final bool) (*record.Record, error) {
	key, err := b.sc.key(b.name)
	if err != nil {
		return nil, err
	}
	b.prefix = key + "/"
	headKey := b.prefix + record.HeadSegment
	head, err := b.sc.get(ctx, headKey)
	if err != nil {
		return nil, err
	}
	if head == nil {
		// Before a fresh head is written: an entry under the batch's prefix
		// means its head was lost or damaged (its key changed), and a fresh
		// start would run committed work again.
		if err := b.checkOrphans(ctx); err != nil {
			return nil, err
		}
		var mine bool
		// Branches named by index need no names in the head: the count says it all.
		head, mine, err = b.sc.put(ctx, headKey, record.NewHead(b.start.UnixNano(), b.kind, b.rule.String(), b.n, b.headNames()))
		if err != nil {
			return nil, err
		}
		if mine {
			return nil, nil // a fresh batch: nothing to restore
		}
	}
	if err := checkKind(headKey, head, record.KindHead); err != nil {
		return nil, err
	}
	if d := record.DiffHead(head, b.kind, b.rule.String(), b.n, b.headNames()); d != "" {
		return nil, fmt.Errorf("%w: %s %q: %s", ErrNondeterministic, b.kind, b.name, d)
	}
	b.start = time.Unix(0, head.Start)
	b.head = head
	if err := b.loadRestored(ctx); err != nil {
		return nil, err
	}
	if final {
		key := b.prefix + record.DecisionSegment
		dec, ok := b.restored[record.DecisionSegment]
		if b.restored == nil {
			dec, err = b.sc.get(ctx, key)
			if err != nil {
				return nil, err
			}
			ok = dec != nil
		}
		if ok {
			if err := checkKind(key, dec, record.KindDecision); err != nil {
				return nil, err
			}
			return dec, nil
		}
	}
	return nil, b.restore(ctx)
}

// checkOrphans reports, when the journal can scan, an entry under the batch's
// prefix while the batch has no head: ErrCorrupt, naming the entry's key. A
// head found by the scan is another worker's, written since this one looked:
// then its entries are no orphans.
func (b *batch[T]) checkOrphans(ctx context.Context) error {
	s, ok := b.sc.journal().(journal.Scanner)
	if !ok {
		return nil
	}
	headKey := b.prefix + record.HeadSegment
	var orphan error
	headFound := false
	err := journalScan(ctx, s, b.prefix, func(key string, value []byte) error {
		verr := record.Verify(key, value)
		switch {
		case key == headKey && verr == nil:
			headFound = true
			return errStopScan
		case verr != nil:
			orphan = verr
		case orphan == nil:
			orphan = fmt.Errorf("%w: journal key %q: an entry of %s %q, which has no head: its head was lost or damaged",
				ErrCorrupt, key, b.kind, b.name)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return fmt.Errorf("durable: journal scan %q: %w", b.prefix, err)
	}
	if headFound {
		return nil
	}
	return orphan
}

var errStopScan = errors.New("durable: stop the scan")

// loadRestored loads every branch record in one call when the journal can scan.
// It checks every entry under the batch's prefix, nested ones included, so that
// an entry whose key was damaged is reported as corrupt rather than missed.
func (b *batch[T]) loadRestored(ctx context.Context) error {
	s, ok := b.sc.journal().(journal.Scanner)
	if !ok {
		return nil
	}
	b.restored = make(map[string]*record.Record)
	var corrupt error
	err := journalScan(ctx, s, b.prefix, func(key string, value []byte) error {
		seg := key[len(b.prefix):]
		if strings.IndexByte(seg, '/') >= 0 || seg == record.HeadSegment {
			// A nested step's record, read when its step runs, or the head,
			// read already: only checked.
			if err := record.Verify(key, value); err != nil && corrupt == nil {
				corrupt = err
			}
			return nil
		}
		// A success keeps a slice of what it decodes, and value may be reused
		// by the journal once fn returns: keep a copy.
		r, err := record.Decode(key, slices.Clone(value))
		if err != nil {
			if corrupt == nil {
				corrupt = err
			}
			return nil
		}
		b.restored[seg] = r
		return nil
	})
	if err != nil {
		return fmt.Errorf("durable: journal scan %q: %w", b.prefix, err)
	}
	return corrupt
}

// journalScan is s.Scan, with a panic in it returned as an error.
func journalScan(ctx context.Context, s journal.Scanner, prefix string, fn func(key string, value []byte) error) (err error) {
	normal := false
	defer func() {
		if !normal {
			err = journalPanic(recover())
		}
	}()
	err = s.Scan(ctx, prefix, fn)
	normal = true
	return err
}

// branchRecord returns the journaled record of branch i, or nil.
func (b *batch[T]) branchRecord(ctx context.Context, i int) (string, *record.Record, error) {
	seg := record.Escape(b.nameOf(i))
	key := b.prefix + seg
	if b.restored != nil {
		return key, b.restored[seg], nil
	}
	r, err := b.sc.get(ctx, key)
	return key, r, err
}

// restore counts the journaled outcomes of the branches, in sequence order.
func (b *batch[T]) restore(ctx context.Context) error {
	type found struct {
		seq uint64
		i   int
		v   T
		err error
		ran int64
	}
	var all []found
	var late []int
	// A Settle that timed out is final: a branch that finished after its
	// deadline was not counted by the run that stored it, which decided at the
	// deadline, while the branch ran. A resumed run whose decision was not
	// journaled counts it as that run did: Cancelled.
	var deadline int64
	if b.settles() && b.cfg.timeout > 0 {
		deadline = b.start.Add(b.cfg.timeout).UnixNano()
	}
	for i := range b.n {
		key, r, err := b.branchRecord(ctx, i)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		if deadline != 0 && r.Finished > deadline {
			late = append(late, i)
			continue
		}
		if b.digestOf != nil {
			d := b.digestOf(i)
			if r.Version == record.Version1 {
				d = b.digestV1Of(i)
			}
			if r.ItemDigest != string(d[:]) {
				return fmt.Errorf("%w: %s %q: journal key %q holds the result of another item at index %d",
					ErrNondeterministic, b.kind, b.name, key, i)
			}
		}
		v, ferr, err := outcome[T](key, r, b.codecOf(i))
		if err != nil {
			return err
		}
		all = append(all, found{seq: r.Seq, i: i, v: v, err: ferr, ran: r.Ran})
	}
	slices.SortFunc(all, func(x, y found) int {
		if x.seq != y.seq {
			if x.seq < y.seq {
				return -1
			}
			return 1
		}
		return x.i - y.i
	})
	b.restored = nil
	if b.obs != nil && len(all) > 0 {
		b.restoredRan = make([]int64, b.n)
		for i := range b.restoredRan {
			b.restoredRan[i] = -1
		}
		for _, f := range all {
			b.restoredRan[f.i] = f.ran
		}
	}
	for _, f := range all {
		b.count(f.i, f.v, f.err, nil, true)
		if f.seq >= b.seq.Load() {
			b.seq.Store(f.seq + 1)
		}
	}
	for _, i := range late {
		b.status[i] = statusRunning // never dispatched again; Cancelled in the result
	}
	if b.decidedInRestore {
		b.takeDecision()
	}
	b.countNext = b.seq.Load()
	return nil
}

// decision is the journal record of a completed batch. It lists the branches
// in the order of the journaled head, the order replay maps from: a resumed run
// may list them in another.
func (b *batch[T]) decision() (*record.Record, error) {
	at, err := b.reorder()
	if err != nil {
		return nil, err
	}
	r := &record.Record{Kind: record.KindDecision, Decided: time.Now().UnixNano(), Reason: uint8(b.reason), Winner: -1, Statuses: make([]uint8, b.n)}
	for j := range b.n {
		i := at(j)
		s := b.finalStatus(i)
		r.Statuses[j] = uint8(s)
		if i == b.decider {
			r.Winner = j
		}
		if s == StatusFailed {
			r.Failures = append(r.Failures, record.Failure{Index: j, Err: journalError(b.errs[i])})
		}
	}
	return r, nil
}

// journalDecision journals the decision of a final batch, made a moment ago.
// If another run decided first, its decision is adopted once the branches have
// returned. A decision whose write fails ends the call with the error: it is
// not final. Decisions are written whatever the caller's context says since:
// the decision was made. Called without b.mu.
func (b *batch[T]) journalDecision(dec *record.Record) {
	ctx := context.WithoutCancel(b.sc.writeContext(b.parent))
	stored, mine, err := b.sc.put(ctx, b.prefix+record.DecisionSegment, dec)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err != nil:
		if b.abort == nil {
			b.abort = err
		}
	case !mine:
		b.adopted = stored
	}
}

// replay sets the batch's final state from a journaled decision.
func (b *batch[T]) replay(ctx context.Context, dec *record.Record) error {
	key := b.prefix + record.DecisionSegment
	if err := checkKind(key, dec, record.KindDecision); err != nil {
		return err
	}
	if len(dec.Statuses) != b.n {
		return fmt.Errorf("durable: journal key %q: %w: %d statuses for %d branches", key, ErrCorrupt, len(dec.Statuses), b.n)
	}
	// The decision lists branches in the order of the run that made it; the
	// code may now list the same set in another order.
	at, err := b.reorder()
	if err != nil {
		return err
	}
	b.errs = nil
	b.succeeded, b.failed = 0, 0
	for _, f := range dec.Failures {
		b.setErr(at(f.Index), replayedFailure(f.Err))
	}
	// A branch whose Fn ran in this process (another worker's decision won
	// the write) is not replayed, whatever the decision says of it.
	ranHere := make([]bool, b.n)
	for i := range b.n {
		ranHere[i] = b.status[i] != 0 && !b.replayed[i]
	}
	for j, s := range dec.Statuses {
		i := at(j)
		b.status[i] = s
		// Replayed: the outcome came from the journal. Cancelled and
		// NotStarted branches have none.
		b.replayed[i] = !ranHere[i] && (Status(s) == StatusSucceeded || Status(s) == StatusFailed)
		var zero T
		b.values[i] = zero
		switch Status(s) {
		case StatusSucceeded:
			k, r, err := b.branchRecord(ctx, i)
			if err != nil {
				return err
			}
			if r == nil {
				return fmt.Errorf("durable: journal key %q: %w: the decision counts it a success but it holds nothing", k, ErrCorrupt)
			}
			v, ferr, err := outcome[T](k, r, b.codecOf(i))
			if err == nil && ferr != nil {
				err = fmt.Errorf("durable: journal key %q: %w: the decision counts it a success but it holds a failure", k, ErrCorrupt)
			}
			if err != nil {
				return err
			}
			b.values[i] = v
			b.succeeded++
		case StatusFailed:
			if b.errs[i] == nil {
				return fmt.Errorf("durable: journal key %q: %w: no error for failed branch %d", key, ErrCorrupt, i)
			}
			b.failed++
		}
	}
	defer b.observeDecision()
	b.decided = true
	b.decisionReplayed = true
	b.reason = Reason(dec.Reason)
	b.decider = -1
	if dec.Winner >= 0 {
		b.decider = at(dec.Winner)
	}
	// Only a deadline decides without a branch; otherwise the branch counted
	// last decided, with its own outcome (Race and Any return it).
	if b.reason != ReasonTimedOut {
		ok := b.decider >= 0
		if ok {
			switch s := Status(b.status[b.decider]); b.reason {
			case ReasonMinSuccessfulReached:
				ok = s == StatusSucceeded
			case ReasonFailureToleranceExceeded:
				ok = s == StatusFailed
			default:
				ok = s == StatusSucceeded || s == StatusFailed
			}
		}
		if !ok {
			return fmt.Errorf("durable: journal key %q: %w: no finished branch decided it", key, ErrCorrupt)
		}
	}
	return nil
}

// headNames names the branches in the head, or is nil for a batch named by
// index, whose head holds only the count.
func (b *batch[T]) headNames() func(int) string {
	if b.digestOf != nil {
		return nil
	}
	return b.nameOf
}

// reorder maps a branch's index in the journaled head to its index now.
func (b *batch[T]) reorder() (func(int) int, error) {
	if b.head == nil || b.digestOf != nil || b.head.Order == record.OrderDigest(b.n, b.nameOf) {
		return func(j int) int { return j }, nil
	}
	if len(b.head.Names) != b.n {
		return nil, fmt.Errorf("%w: %s %q: the branches come in another order than when the decision was journaled, and there are too many to map it",
			ErrNondeterministic, b.kind, b.name)
	}
	now := make(map[string]int, b.n)
	for i := range b.n {
		now[b.nameOf(i)] = i
	}
	perm := make([]int, b.n)
	for j, name := range b.head.Names {
		perm[j] = now[name] // the sets are equal: diffHead checked
	}
	return func(j int) int { return perm[j] }, nil
}
