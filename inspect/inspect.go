// Package inspect reads what a durable execution left in its journal: a tree
// of its combinators, their branches and the steps run inside them, with
// statuses, times, values and errors. It only reads.
//
// [Read] returns the whole tree of one execution; [Entries] streams its
// entries one at a time, for executions too big to hold at once. Both need a
// journal that implements [journal.Scanner] (every journal durable ships
// does): an execution's entries are found by their key prefix.
//
// Whether an outcome was replayed or ran is a fact of a run, not of the
// journal: what the tree reports is what the journal holds. A branch with no
// entry was never journaled: it was still running, failed with a failure that
// is not final, or never started — a decision, when there is one, says which.
// Entries that fail their checksum or do not decode are reported in the tree,
// with their error, and never end the walk.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

// ErrNoExecution reports an execution ID the journal holds no entry for.
var ErrNoExecution = errors.New("inspect: no such execution")

// EntryKind is what a journal entry holds.
type EntryKind string

const (
	KindHead     EntryKind = "head"     // a combinator's start
	KindSuccess  EntryKind = "success"  // a branch's or step's value
	KindFailure  EntryKind = "failure"  // a final (Permanent) failure
	KindDecision EntryKind = "decision" // a final combinator's decision
	KindAttempt  EntryKind = "attempt"  // a failed attempt of a retried step
	KindCorrupt  EntryKind = "corrupt"  // an entry that does not decode
)

// Entry is one journal entry of an execution, decoded.
type Entry struct {
	Key     string
	Path    []string // the names on the way from the execution, unescaped
	Kind    EntryKind
	Version int // of the record format

	// head
	Combinator string
	Policy     string
	Start      time.Time
	Branches   int
	Names      []string // the branch names, in input order, when kept

	// success, failure, attempt
	Finished time.Time // zero in version 1 records
	Ran      time.Duration
	Codec    string // success: "" for encoding/json
	Value    []byte // success: the encoded value
	Err      *Error // failure, attempt

	// attempt
	Attempt int
	NextAt  time.Time

	// decision
	Decided  time.Time
	Reason   durable.Reason
	Winner   int // the winner's index in the head's order, -1: none
	Statuses []durable.Status
	Failures map[int]*Error // by index in the head's order

	Corrupt error // KindCorrupt: why
}

// Error is a failure as journaled.
type Error struct {
	Type      string
	Message   string
	Permanent bool     // it was marked with durable.Permanent
	Sentinels []string // the registered sentinel errors it matched
}

// Entries returns the entries of execution executionID in the order the
// journal's Scan gives them, decoding each as it comes. It stops at the first
// error of the journal itself; an entry that does not decode is an Entry of
// KindCorrupt.
func Entries(ctx context.Context, j journal.Journal, executionID string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		s, ok := j.(journal.Scanner)
		if !ok {
			yield(Entry{}, fmt.Errorf("inspect: the journal (%T) cannot scan its entries", j))
			return
		}
		prefix := record.Escape(executionID) + "/"
		stop := errors.New("stop")
		err := s.Scan(ctx, prefix, func(key string, value []byte) error {
			// The journal lends value until this function returns; the
			// Entry, which the caller may keep, holds a copy.
			if !yield(decode(key, prefix, slices.Clone(value)), nil) {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			yield(Entry{}, fmt.Errorf("inspect: scan %q: %w", prefix, err))
		}
	}
}

func decode(key, prefix string, value []byte) Entry {
	e := Entry{Key: key}
	for _, seg := range strings.Split(strings.TrimPrefix(key, prefix), "/") {
		e.Path = append(e.Path, record.Unescape(seg))
	}
	r, err := record.Decode(key, value)
	if err != nil {
		e.Kind, e.Corrupt = KindCorrupt, err
		return e
	}
	e.Version = int(r.Version)
	switch r.Kind {
	case record.KindHead:
		e.Kind = KindHead
		e.Combinator, e.Policy, e.Start = r.Combinator, r.Policy, time.Unix(0, r.Start)
		e.Branches, e.Names = r.Count, r.Names
	case record.KindSuccess:
		e.Kind = KindSuccess
		e.Codec, e.Value = r.Codec, r.Value
	case record.KindFailure:
		e.Kind, e.Err = KindFailure, errorOf(r.Err)
		e.Err.Permanent = true // a failure record is one
	case record.KindAttempt:
		e.Kind, e.Err, e.Attempt = KindAttempt, errorOf(r.Err), r.Attempt
		e.NextAt = time.Unix(0, r.NextAt)
	case record.KindDecision:
		e.Kind, e.Reason, e.Winner = KindDecision, durable.Reason(r.Reason), r.Winner
		if r.Decided != 0 {
			e.Decided = time.Unix(0, r.Decided)
		}
		for _, s := range r.Statuses {
			e.Statuses = append(e.Statuses, durable.Status(s))
		}
		e.Failures = make(map[int]*Error, len(r.Failures))
		for _, f := range r.Failures {
			e.Failures[f.Index] = errorOf(f.Err)
		}
	}
	if r.Finished != 0 {
		e.Finished, e.Ran = time.Unix(0, r.Finished), time.Duration(r.Ran)
	}
	return e
}

func errorOf(e record.Error) *Error {
	out := &Error{Type: e.TypeName, Message: e.Message}
	for _, s := range e.Sentinels {
		if s == permanentMark {
			out.Permanent = true
		} else {
			out.Sentinels = append(out.Sentinels, s)
		}
	}
	return out
}

// permanentMark, among a journaled error's sentinels, marks a Permanent one
// (see the durable package's record format).
const permanentMark = "!permanent"

// NodeKind is what a [Node] of the tree is.
type NodeKind string

const (
	NodeExecution  NodeKind = "execution"
	NodeCombinator NodeKind = "combinator" // a Parallel, Settle, Group, ...
	NodeBranch     NodeKind = "branch"     // one branch of a combinator
	NodeStep       NodeKind = "step"       // a Step.Run
)

// Node is one element of an execution's tree.
type Node struct {
	Kind NodeKind
	Name string
	Key  string // its journal key

	// A combinator: its kind, policy, start and decision (nil when none is
	// journaled).
	Combinator string
	Policy     string
	Start      time.Time
	Decision   *Decision

	// A branch or step: its index in its combinator (-1 for a step), its
	// status — from the decision when there is one, else from its own entry:
	// Succeeded, Failed (a final failure), or 0 when nothing is journaled — the
	// time it finished, how long it ran, its failed attempts, its value (as
	// text when the codec is encoding/json) and its final failure.
	Index    int
	Status   durable.Status
	Finished time.Time
	Ran      time.Duration
	Attempts []*Entry
	Codec    string
	Value    []byte
	Err      *Error

	// Entries under the node's key that do not decode.
	Corrupt []*Entry

	Children []*Node
}

// Decision is a final combinator's journaled decision.
type Decision struct {
	Reason  durable.Reason
	Decided time.Time // zero in version 1 records
	Winner  string    // the branch that decided, "" when none did (a deadline)
}

// ValueText is the node's value as text: the JSON itself for the default
// codec, else a note of the codec and size.
func (n *Node) ValueText() string {
	switch {
	case n.Value == nil:
		return ""
	case n.Codec == "":
		return string(n.Value)
	}
	return fmt.Sprintf("<%d bytes, codec %s>", len(n.Value), n.Codec)
}

// Read returns the tree of execution executionID: its combinators and steps
// in key order, each combinator's branches in input order, and under each
// branch or step what it ran. An execution the journal holds nothing of is
// [ErrNoExecution].
func Read(ctx context.Context, j journal.Journal, executionID string) (*Node, error) {
	root := &Node{Kind: NodeExecution, Name: executionID, Key: record.Escape(executionID), Index: -1}
	byKey := map[string]*Node{}
	var heads, decisions []Entry
	n := 0
	node := func(path []string) *Node {
		cur := root
		for k := range path {
			key := record.Escape(executionID)
			for _, p := range path[:k+1] {
				key += "/" + record.Escape(p)
			}
			next := byKey[key]
			if next == nil {
				next = &Node{Kind: NodeStep, Name: path[k], Key: key, Index: -1}
				byKey[key] = next
				cur.Children = append(cur.Children, next)
			}
			cur = next
		}
		return cur
	}
	for e, err := range Entries(ctx, j, executionID) {
		if err != nil {
			return nil, err
		}
		n++
		last := e.Path[len(e.Path)-1]
		switch {
		case e.Kind == KindCorrupt:
			parent := node(e.Path[:len(e.Path)-1])
			parent.Corrupt = append(parent.Corrupt, &e)
		case e.Kind == KindHead && last == record.HeadSegment:
			heads = append(heads, e)
		case e.Kind == KindDecision && last == record.DecisionSegment:
			decisions = append(decisions, e)
		case e.Kind == KindAttempt:
			parent := node(e.Path[:len(e.Path)-1])
			parent.Attempts = append(parent.Attempts, &e)
		case e.Kind == KindSuccess || e.Kind == KindFailure:
			nd := node(e.Path)
			nd.Finished, nd.Ran, nd.Codec, nd.Value, nd.Err = e.Finished, e.Ran, e.Codec, e.Value, e.Err
			nd.Status = durable.StatusSucceeded
			if e.Kind == KindFailure {
				nd.Status = durable.StatusFailed
			}
		default: // a record under a key of another kind
			parent := node(e.Path[:len(e.Path)-1])
			e.Kind, e.Corrupt = KindCorrupt, fmt.Errorf("%w: a %s record under %q", durable.ErrCorrupt, e.Kind, e.Key)
			parent.Corrupt = append(parent.Corrupt, &e)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoExecution, executionID)
	}
	for _, h := range heads {
		c := node(h.Path[:len(h.Path)-1])
		c.Kind, c.Combinator, c.Policy, c.Start = NodeCombinator, h.Combinator, h.Policy, h.Start
		c.branches(h)
	}
	for _, d := range decisions {
		c := node(d.Path[:len(d.Path)-1])
		c.decide(d)
	}
	for _, a := range byKey {
		slices.SortFunc(a.Attempts, func(x, y *Entry) int { return x.Attempt - y.Attempt })
	}
	sortTree(root)
	return root, nil
}

// branches marks a combinator's children as its branches, in the head's
// order, adding those with nothing journaled.
func (c *Node) branches(h Entry) {
	names := h.Names
	if names == nil && h.Branches > 0 && h.Combinator != "Group" {
		for i := range h.Branches { // named by index
			names = append(names, strconv.Itoa(i))
		}
	}
	have := map[string]*Node{}
	for _, ch := range c.Children {
		have[ch.Name] = ch
	}
	for i, name := range names {
		b := have[name]
		if b == nil {
			b = &Node{Kind: NodeBranch, Name: name, Key: c.Key + "/" + record.Escape(name)}
			c.Children = append(c.Children, b)
		}
		b.Kind, b.Index = NodeBranch, i
	}
	if names == nil { // a Group, or a huge set: whatever is journaled
		for _, ch := range c.Children {
			ch.Kind = NodeBranch
		}
	}
}

// decide applies a decision to a combinator's branches, in the head's order.
func (c *Node) decide(d Entry) {
	c.Decision = &Decision{Reason: d.Reason, Decided: d.Decided}
	for _, ch := range c.Children {
		if ch.Kind != NodeBranch || ch.Index < 0 || ch.Index >= len(d.Statuses) {
			continue
		}
		ch.Status = d.Statuses[ch.Index]
		if f := d.Failures[ch.Index]; f != nil && ch.Err == nil {
			ch.Err = f
		}
		if ch.Index == d.Winner {
			c.Decision.Winner = ch.Name
		}
	}
}

// sortTree orders branches by index and everything else by key.
func sortTree(n *Node) {
	slices.SortStableFunc(n.Children, func(x, y *Node) int {
		if x.Kind == NodeBranch && y.Kind == NodeBranch && x.Index >= 0 && y.Index >= 0 {
			return x.Index - y.Index
		}
		return strings.Compare(x.Key, y.Key)
	})
	for _, ch := range n.Children {
		sortTree(ch)
	}
}

// Walk calls fn for n and every node under it, depth first, with its depth.
func (n *Node) Walk(fn func(n *Node, depth int)) {
	var walk func(*Node, int)
	walk = func(n *Node, d int) {
		fn(n, d)
		for _, ch := range n.Children {
			walk(ch, d+1)
		}
	}
	walk(n, 0)
}
