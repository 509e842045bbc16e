package durable

// The journal side of the engine: opening a journaled batch, restoring its
// branches in their original completion order, and journaling or replaying the
// decision of a final combinator.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/durable-go/durable/internal/arena"
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
		var dec *record.Record
		if b.restored != nil {
			dec = b.restored.decision
		} else if dec, err = b.sc.get(ctx, key); err != nil {
			return nil, err
		}
		if dec != nil {
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
// head found by the scan, or by a second look after it, is another worker's,
// written since this one looked: then its entries are no orphans.
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
	if headFound || orphan == nil {
		return nil
	}
	// Every worker journals the head before anything under it, so an entry
	// means a head, unless it was lost. A scan that is no snapshot (Memory's
	// visits its shards one at a time) may have missed another worker's
	// head, written after this one looked and before its entries: look again.
	head, err := b.sc.get(ctx, headKey)
	if err != nil {
		return err
	}
	if head != nil {
		return nil
	}
	return orphan
}

var errStopScan = errors.New("durable: stop the scan")

// restoredSet is what one scan of a batch's prefix read: each branch's
// journaled outcome, and the decision.
type restoredSet struct {
	at       []int32           // by branch index: 1 + the outcome's place in blocks, 0 for none
	blocks   [][]storedOutcome // outcomeBlock outcomes each: growing copies none
	count    int
	decision *record.Record
	copies   arena.Blocks // the bytes of the outcomes
}

const outcomeBlock = 256

// add keeps o as branch i's outcome.
func (rs *restoredSet) add(i int, o storedOutcome) {
	if p := rs.outcome(i); p != nil {
		*p = o // a journal that visits a key twice: the last visit wins
		return
	}
	if rs.count%outcomeBlock == 0 {
		rs.blocks = append(rs.blocks, make([]storedOutcome, 0, min(outcomeBlock, len(rs.at)-rs.count)))
	}
	last := len(rs.blocks) - 1
	rs.blocks[last] = append(rs.blocks[last], o)
	rs.count++
	rs.at[i] = int32(rs.count)
}

// outcome returns branch i's outcome, or nil.
func (rs *restoredSet) outcome(i int) *storedOutcome {
	at := int(rs.at[i]) - 1
	if at < 0 {
		return nil
	}
	return &rs.blocks[at/outcomeBlock][at%outcomeBlock]
}

// storedOutcome is a branch's journaled record.
type storedOutcome struct {
	key string
	rec *record.Record // the record, unless it is a success read by a scan
	s   record.Success // a success read by a scan
}

func (o *storedOutcome) seq() uint64 {
	if o.rec != nil {
		return o.rec.Seq
	}
	return o.s.Seq
}

func (o *storedOutcome) finished() int64 {
	if o.rec != nil {
		return o.rec.Finished
	}
	return o.s.Finished
}

func (o *storedOutcome) ran() int64 {
	if o.rec != nil {
		return o.rec.Ran
	}
	return o.s.Ran
}

// digestMatches reports whether o holds item i's digest: the version 1
// digest in a version 1 record.
func (b *batch[T]) digestMatches(o *storedOutcome, i int) bool {
	version := o.s.Version
	if o.rec != nil {
		version = o.rec.Version
	}
	var sum [16]byte
	if version == record.Version1 {
		sum = b.digestV1Of(i)
	} else {
		sum = b.digestOf(i)
	}
	if o.rec != nil {
		return o.rec.ItemDigest == string(sum[:])
	}
	return string(o.s.ItemDigest) == string(sum[:])
}

// outcomeOf turns a branch's journaled record into its result; c is the codec
// the code reads it with.
func outcomeOf[T any](o *storedOutcome, c Codec) (T, error, error) {
	if o.rec != nil {
		return outcome[T](o.key, o.rec, c)
	}
	v, err := successValue[T](o.key, o.s.Codec, o.s.Value, c)
	return v, nil, err
}

// loadRestored reads every branch record in one call when the journal can
// scan. It checks every entry under the batch's prefix, nested ones included,
// so that an entry whose key was damaged is reported as corrupt rather than
// missed. A resumed run of a large batch spends most of its time here: a
// success is read without allocating, into a copy of its bytes in an arena.
func (b *batch[T]) loadRestored(ctx context.Context) error {
	s, ok := b.sc.journal().(journal.Scanner)
	if !ok {
		return nil
	}
	rs := &restoredSet{at: make([]int32, b.n)}
	// A batch named by index has its branches' keys in decimal; others by
	// their escaped names.
	var named map[string]int
	if b.digestOf == nil {
		named = make(map[string]int, b.n)
		for i := range b.n {
			named[record.Escape(b.nameOf(i))] = i
		}
	}
	var corrupt error
	err := journalScan(ctx, s, b.prefix, func(key string, value []byte) error {
		seg := key[len(b.prefix):]
		i := -1
		switch {
		case seg == record.DecisionSegment:
			// The journal may reuse value once fn returns: decode a copy.
			r, err := record.Decode(key, slices.Clone(value))
			if err != nil {
				corrupt = cmp.Or(corrupt, err)
			}
			rs.decision = r
			return nil
		case named != nil:
			if at, ok := named[seg]; ok {
				i = at
			}
		default:
			i = decimalIndex(seg, b.n)
		}
		if i < 0 {
			// The head, read already, or a nested step's record, read when
			// its step runs: only its checksum is checked. An entry of no
			// branch is decoded too, to be reported if it does not decode.
			check := record.Verify
			if seg != record.HeadSegment && strings.IndexByte(seg, '/') < 0 {
				check = func(key string, value []byte) error {
					_, err := record.Decode(key, value)
					return err
				}
			}
			if err := check(key, value); err != nil {
				corrupt = cmp.Or(corrupt, err)
			}
			return nil
		}
		o := storedOutcome{key: key}
		v := rs.copies.Bytes(value)
		ok, err := record.DecodeSuccess(key, v, &o.s)
		if err == nil && !ok {
			o.rec, err = record.Decode(key, v)
		}
		if err != nil {
			corrupt = cmp.Or(corrupt, err)
			return nil
		}
		rs.add(i, o)
		return nil
	})
	if err != nil {
		return fmt.Errorf("durable: journal scan %q: %w", b.prefix, err)
	}
	b.restored = rs
	return corrupt
}

// decimalIndex is the branch index whose key segment is seg, in a batch of n
// named by index, or -1: seg must be the index in decimal as key writes it.
func decimalIndex(seg string, n int) int {
	if seg == "" || len(seg) > 18 || (seg[0] == '0' && len(seg) > 1) {
		return -1
	}
	x := 0
	for _, c := range []byte(seg) {
		if c < '0' || c > '9' {
			return -1
		}
		x = x*10 + int(c-'0')
	}
	if x >= n {
		return -1
	}
	return x
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

// stored returns the journaled record of branch i, or nil.
func (b *batch[T]) stored(ctx context.Context, i int) (*storedOutcome, error) {
	if b.restored != nil {
		return b.restored.outcome(i), nil
	}
	key := b.key(i)
	r, err := b.sc.get(ctx, key)
	if r == nil || err != nil {
		return nil, err
	}
	return &storedOutcome{key: key, rec: r}, nil
}

// restore counts the journaled outcomes of the branches, in sequence order.
func (b *batch[T]) restore(ctx context.Context) error {
	type found struct {
		seq uint64
		i   int
		err error
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
	if b.restored != nil {
		all = make([]found, 0, b.restored.count)
	}
	for i := range b.n {
		o, err := b.stored(ctx, i)
		if err != nil {
			return err
		}
		if o == nil {
			continue
		}
		if deadline != 0 && o.finished() > deadline {
			late = append(late, i)
			continue
		}
		if b.digestOf != nil && !b.digestMatches(o, i) {
			return fmt.Errorf("%w: %s %q: journal key %q holds the result of another item at index %d",
				ErrNondeterministic, b.kind, b.name, o.key, i)
		}
		// Decoded in place: count stores it there again.
		var ferr error
		b.values[i], ferr, err = outcomeOf[T](o, b.codecOf(i))
		if err != nil {
			return err
		}
		all = append(all, found{seq: o.seq(), i: i, err: ferr})
		if b.obs != nil {
			if b.restoredRan == nil {
				b.restoredRan = make([]int64, b.n)
				for i := range b.restoredRan {
					b.restoredRan[i] = -1
				}
			}
			b.restoredRan[i] = o.ran()
		}
	}
	// In index order, the outcomes are mostly in sequence order already.
	slices.SortFunc(all, func(x, y found) int {
		if c := cmp.Compare(x.seq, y.seq); c != 0 {
			return c
		}
		return x.i - y.i
	})
	b.restored = nil
	var zero T
	for _, f := range all {
		v := b.values[f.i]
		b.values[f.i] = zero // a branch counted Cancelled has no value
		b.count(f.i, v, f.err, nil, true)
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
			o, err := b.stored(ctx, i)
			if err != nil {
				return err
			}
			if o == nil {
				return fmt.Errorf("durable: journal key %q: %w: the decision counts it a success but it holds nothing", b.key(i), ErrCorrupt)
			}
			v, ferr, err := outcomeOf[T](o, b.codecOf(i))
			if err == nil && ferr != nil {
				err = fmt.Errorf("durable: journal key %q: %w: the decision counts it a success but it holds a failure", o.key, ErrCorrupt)
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
