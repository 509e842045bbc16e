package main

import (
	"context"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/spf13/cobra"

	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

// pageSize is how many executions ls asks the journal for at a time.
const pageSize = 500

func (a *app) lsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the executions the journal holds",
		Long: `ls lists the executions the journal holds, in the byte order of their stored
IDs, one a line: how many entries each has, when the oldest and the latest were
written (the journal's clock, local time), and its ID.

With --json it writes one JSON document (see "durable help json" or the README).`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer j.Close()
			if asJSON {
				return writeExecutionsJSON(a.stdout, executions(cmd.Context(), j))
			}
			t := table{w: a.stdout}
			for e, err := range executions(cmd.Context(), j) {
				if err != nil {
					return err
				}
				t.row(e)
			}
			t.header() // an empty table: the header alone
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON")
	return cmd
}

// table writes executions, one a line, under a header written with the
// first, so that an error before it leaves standard output empty.
type table struct {
	w       io.Writer
	written bool
}

func (t *table) header() {
	if !t.written {
		t.written = true
		fmt.Fprintf(t.w, "%8s  %-19s  %-19s  %s\n", "ENTRIES", "FIRST", "LAST", "EXECUTION")
	}
}

func (t *table) row(e journal.Execution) {
	t.header()
	fmt.Fprintf(t.w, "%8d  %-19s  %-19s  %s\n", e.Entries, clock(e.First), clock(e.Last), displayID(e.ID))
}

// executions yields every execution of the journal, a page at a time.
func executions(ctx context.Context, l journal.Lister) iter.Seq2[journal.Execution, error] {
	return func(yield func(journal.Execution, error) bool) {
		after := ""
		for {
			page, err := l.Executions(ctx, after, pageSize)
			if err != nil {
				yield(journal.Execution{}, explainListing(err))
				return
			}
			for _, e := range page {
				if !yield(e, nil) {
					return
				}
			}
			if len(page) < pageSize {
				return
			}
			after = page[len(page)-1].ID
		}
	}
}

// lookup finds the execution whose stored ID is id. The Lister lists the IDs
// after a given one, so lookup starts just before id: at its last byte
// decremented (every ID in between starts with that, and is rare), or at id
// without its last byte when that byte is 0, which nothing sorts between.
func lookup(ctx context.Context, l journal.Lister, id string) (journal.Execution, bool, error) {
	after := ""
	if n := len(id); n > 0 {
		if id[n-1] == 0 {
			after = id[:n-1]
		} else {
			after = id[:n-1] + string([]byte{id[n-1] - 1}) + "\xff"
		}
	}
	for {
		page, err := l.Executions(ctx, after, 16)
		if err != nil {
			return journal.Execution{}, false, explainListing(err)
		}
		for _, e := range page {
			switch {
			case e.ID == id:
				return e, true, nil
			case e.ID > id:
				return journal.Execution{}, false, nil
			}
		}
		if len(page) < 16 {
			return journal.Execution{}, false, nil
		}
		after = page[len(page)-1].ID
	}
}

// displayID is a stored execution ID as the user gave it, unescaped, quoted
// when it holds spaces or characters that do not print.
func displayID(stored string) string { return displayName(record.Unescape(stored)) }

// clock formats a time for a table: local time, to the second.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}
