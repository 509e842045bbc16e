package main

import (
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/spf13/cobra"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/inspect"
	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

// jsonVersion is the version of the JSON documents ls and show write.
const jsonVersion = 1

// jsonHelp documents the JSON output; doc.go holds the same text, and a test
// keeps the two equal.
const jsonHelp = `Version 1 of the JSON that "durable ls --json" and "durable show --json" write.

Stability: within a version, fields are only ever added, never renamed,
removed or given another type; a change that would break a reader raises
"version". Readers must ignore fields they do not know. Times are RFC 3339
strings with nanoseconds, in UTC; durations are integers of nanoseconds, in
fields whose names end in _ns. A field shown with "?" is omitted when empty.

durable ls --json writes one object:

	{
	  "version": 1,
	  "executions": [
	    {
	      "id": string,      // the execution ID, as given to durable.WithJournal
	      "key": string,     // the ID as stored: the keys' first segment, escaped
	      "entries": int,    // how many entries it has
	      "first": time,     // when the oldest entry was written (journal's clock)
	      "last": time       // when the latest entry was written
	    }, ...
	  ]
	}

durable show --json EXEC writes one object:

	{
	  "version": 1,
	  "execution": node      // the execution, the root of the tree
	}

where a node is

	{
	  "kind": "execution" | "combinator" | "branch" | "step",
	  "name": string,        // unescaped; a branch of an unnamed set: its index
	  "key": string,         // its journal key (escaped)
	  "index"?: int,         // a branch: its index in its combinator's input
	  "combinator"?: string, // a combinator: "Parallel", "Settle", "Group", ...
	  "policy"?: string,     // a combinator: its completion rule
	  "start"?: time,        // a combinator: when it first started
	  "decision"?: {         // a combinator whose decision is journaled
	    "reason": string,    // "ALL_COMPLETED", "MIN_SUCCESSFUL_REACHED", ...
	    "decided"?: time,
	    "winner"?: string    // the branch that decided it
	  },
	  "status"?: string,     // a branch or step: "SUCCEEDED", "FAILED",
	                         // "CANCELLED", "NOT_STARTED", or "NOT_JOURNALED"
	                         // (nothing journaled: running, failed with a
	                         // failure that is not final, or never started)
	  "finished"?: time,     // when its outcome was journaled
	  "ran_ns"?: int,        // how long it ran
	  "codec"?: string,      // the value's codec, "" for encoding/json
	  "value"?: any,         // the value, as JSON, with the encoding/json codec
	  "value_base64"?: string, // the value's bytes, with any other codec
	  "error"?: error,       // its final failure
	  "attempts"?: [         // the failed attempts of a retried step
	    {"attempt": int, "finished"?: time, "ran_ns"?: int,
	     "next_at"?: time, "error": error}, ...
	  ],
	  "corrupt"?: [          // entries under it that do not decode
	    {"key": string, "error": string}, ...
	  ],
	  "children"?: [node, ...], // combinators and steps in key order,
	                         // a combinator's branches in input order
	  "omitted"?: int        // nodes below it that --depth left out
	}

and an error is

	{"type": string, "message": string, "sentinels"?: [string, ...]}

with the error's Go type, its message, and the registered sentinel errors it
matched.`

func (a *app) jsonHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "json",
		Short: "The JSON schema of ls --json and show --json",
		Long:  jsonHelp,
	}
}

type jsonExecution struct {
	ID      string    `json:"id"`
	Key     string    `json:"key"`
	Entries int64     `json:"entries"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
}

// writeExecutionsJSON writes the executions as they come, so that a long
// list is not held in memory.
// Nothing is written before the first page has been read, so that an error
// there leaves standard output empty.
func writeExecutionsJSON(w io.Writer, all iter.Seq2[journal.Execution, error]) error {
	opened := false
	open := func() error {
		if opened {
			return nil
		}
		opened = true
		_, err := fmt.Fprintf(w, "{\n  \"version\": %d,\n  \"executions\": [", jsonVersion)
		return err
	}
	sep := "\n    "
	for e, err := range all {
		if err != nil {
			return err
		}
		if err := open(); err != nil {
			return err
		}
		b, err := json.Marshal(jsonExecution{
			ID: record.Unescape(e.ID), Key: e.ID, Entries: e.Entries, First: e.First.UTC(), Last: e.Last.UTC(),
		})
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, sep+string(b)); err != nil {
			return err
		}
		sep = ",\n    "
	}
	if err := open(); err != nil {
		return err
	}
	if sep != "\n    " {
		sep = "\n  "
	} else {
		sep = ""
	}
	_, err := io.WriteString(w, sep+"]\n}\n")
	return err
}

type jsonShow struct {
	Version   int       `json:"version"`
	Execution *jsonNode `json:"execution"`
}

type jsonNode struct {
	Kind        string          `json:"kind"`
	Name        string          `json:"name"`
	Key         string          `json:"key"`
	Index       *int            `json:"index,omitempty"`
	Combinator  string          `json:"combinator,omitempty"`
	Policy      string          `json:"policy,omitempty"`
	Start       *time.Time      `json:"start,omitempty"`
	Decision    *jsonDecision   `json:"decision,omitempty"`
	Status      string          `json:"status,omitempty"`
	Finished    *time.Time      `json:"finished,omitempty"`
	RanNS       int64           `json:"ran_ns,omitempty"`
	Codec       string          `json:"codec,omitempty"`
	Value       json.RawMessage `json:"value,omitempty"`
	ValueBase64 []byte          `json:"value_base64,omitempty"`
	Error       *jsonError      `json:"error,omitempty"`
	Attempts    []jsonAttempt   `json:"attempts,omitempty"`
	Corrupt     []jsonCorrupt   `json:"corrupt,omitempty"`
	Children    []*jsonNode     `json:"children,omitempty"`
	Omitted     int             `json:"omitted,omitempty"`
}

type jsonDecision struct {
	Reason  string     `json:"reason"`
	Decided *time.Time `json:"decided,omitempty"`
	Winner  string     `json:"winner,omitempty"`
}

type jsonError struct {
	Type      string   `json:"type"`
	Message   string   `json:"message"`
	Sentinels []string `json:"sentinels,omitempty"`
}

type jsonAttempt struct {
	Attempt  int        `json:"attempt"`
	Finished *time.Time `json:"finished,omitempty"`
	RanNS    int64      `json:"ran_ns,omitempty"`
	NextAt   *time.Time `json:"next_at,omitempty"`
	Error    *jsonError `json:"error"`
}

type jsonCorrupt struct {
	Key   string `json:"key"`
	Error string `json:"error"`
}

// writeTreeJSON writes the tree of an execution down to depth (< 0: all).
func writeTreeJSON(w io.Writer, root *inspect.Node, depth int) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(jsonShow{Version: jsonVersion, Execution: toJSON(root, depth)})
}

func toJSON(n *inspect.Node, depth int) *jsonNode {
	j := &jsonNode{
		Kind: string(n.Kind), Name: n.Name, Key: n.Key,
		Combinator: n.Combinator, Policy: n.Policy, Start: timePtr(n.Start),
		Finished: timePtr(n.Finished), RanNS: int64(n.Ran), Codec: n.Codec,
		Error: errorJSON(n.Err),
	}
	if n.Kind == inspect.NodeBranch && n.Index >= 0 {
		j.Index = &n.Index
	}
	if n.Kind == inspect.NodeBranch || n.Kind == inspect.NodeStep {
		j.Status = statusText(n.Status)
	}
	if d := n.Decision; d != nil {
		j.Decision = &jsonDecision{Reason: d.Reason.String(), Decided: timePtr(d.Decided), Winner: d.Winner}
	}
	if n.Value != nil {
		if n.Codec == "" && json.Valid(n.Value) {
			j.Value = n.Value
		} else {
			j.ValueBase64 = n.Value
		}
	}
	for _, at := range n.Attempts {
		j.Attempts = append(j.Attempts, jsonAttempt{
			Attempt: at.Attempt, Finished: timePtr(at.Finished), RanNS: int64(at.Ran),
			NextAt: timePtr(at.NextAt), Error: errorJSON(at.Err),
		})
	}
	for _, c := range n.Corrupt {
		j.Corrupt = append(j.Corrupt, jsonCorrupt{Key: c.Key, Error: c.Corrupt.Error()})
	}
	if depth == 0 {
		j.Omitted = descendants(n)
		return j
	}
	for _, ch := range n.Children {
		j.Children = append(j.Children, toJSON(ch, depth-1))
	}
	return j
}

func errorJSON(e *inspect.Error) *jsonError {
	if e == nil {
		return nil
	}
	return &jsonError{Type: e.Type, Message: e.Message, Sentinels: e.Sentinels}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() || t.UnixNano() == 0 {
		return nil
	}
	u := t.UTC()
	return &u
}

// statusText names a branch's or step's status; 0 is nothing journaled.
func statusText(s durable.Status) string {
	if s == 0 {
		return "NOT_JOURNALED"
	}
	return s.String()
}

// descendants counts the nodes under n.
func descendants(n *inspect.Node) int {
	c := 0
	n.Walk(func(*inspect.Node, int) { c++ })
	return c - 1
}
