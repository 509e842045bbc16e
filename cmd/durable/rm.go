package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/durable-go/durable/internal/record"
)

// liveWarning is what rm and gc say about executions still being written.
const liveWarning = `Deleting an execution that a process is still running races with it: the
process's next checkpoint recreates the execution with the entries written
from then on, and a later resume of it runs again the steps whose entries were
deleted. Delete only executions no process runs: stop or finish the job first,
or, with gc, choose --older-than longer than any job runs.`

func (a *app) rmCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "rm EXEC",
		Short: "Delete an execution",
		Long: `rm deletes every entry of execution EXEC (its ID as given to
durable.WithJournal). It asks first, on the terminal, unless --yes is given;
without a terminal and without --yes it refuses (exit status 2).

` + liveWarning,
		Args: exactArgs("EXEC"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			if !yes && !isTerminal(a.stdin) {
				return usagef("rm: standard input is not a terminal to confirm on; pass --yes to delete without asking")
			}
			j, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer j.Close()
			id := record.Escape(argv[0])
			e, ok, err := lookup(ctx, j, id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no such execution %q in the journal", argv[0])
			}
			if !yes {
				q := fmt.Sprintf("delete execution %s (%s, last written %s ago)?",
					displayName(argv[0]), count(e.Entries, "entry", "entries"), human(time.Since(e.Last)))
				if ok, err := a.confirm(q); err != nil || !ok {
					return err
				}
			}
			n, err := j.DeleteExecution(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "deleted execution %s: %s\n", displayName(argv[0]), count(n, "entry", "entries"))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

func (a *app) gcCommand() *cobra.Command {
	var (
		olderThan time.Duration
		dryRun    bool
		yes       bool
	)
	cmd := &cobra.Command{
		Use:   "gc --older-than DURATION",
		Short: "Delete the executions last written before a time",
		Long: `gc deletes every execution whose latest entry was written more than DURATION
ago (a Go duration: 720h is 30 days): the cut is this machine's clock less
DURATION, compared with the times the journal recorded (a PostgreSQL server's
clock). --dry-run lists
what it would delete and deletes nothing. Otherwise it asks first, on the
terminal, unless --yes is given; without a terminal and without --yes it
refuses (exit status 2).

` + liveWarning,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !cmd.Flags().Changed("older-than") {
				return usagef("--older-than is required: delete executions last written more than how long ago? (e.g. 720h)")
			}
			if olderThan <= 0 {
				return usagef("--older-than %v: want a positive duration, such as 720h", olderThan)
			}
			if !yes && !dryRun && !isTerminal(a.stdin) {
				return usagef("gc: standard input is not a terminal to confirm on; pass --yes to delete without asking, or --dry-run")
			}
			j, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer j.Close()
			cut := time.Now().Add(-olderThan)
			old, entries, err := a.olderThan(ctx, j, cut, dryRun)
			if err != nil {
				return err
			}
			when := cut.Local().Format(time.DateTime)
			switch {
			case old == 0:
				fmt.Fprintf(a.stdout, "no execution was last written before %s\n", when)
				return nil
			case dryRun:
				fmt.Fprintf(a.stdout, "would delete %s (%s), last written before %s\n",
					count(int64(old), "execution", "executions"), count(entries, "entry", "entries"), when)
				return nil
			case !yes:
				q := fmt.Sprintf("delete %s (%s), last written before %s?", count(int64(old), "execution", "executions"), count(entries, "entry", "entries"), when)
				if ok, err := a.confirm(q); err != nil || !ok {
					return err
				}
			}
			n, err := j.DeleteOlder(ctx, cut)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "deleted %s, last written before %s\n", count(int64(n), "execution", "executions"), when)
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "delete executions last written more than `DURATION` ago (e.g. 720h)")
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "list what would be deleted, delete nothing")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

// olderThan counts the executions last written before cut and their entries;
// with list, it prints each, as ls does.
func (a *app) olderThan(ctx context.Context, j store, cut time.Time, list bool) (n int, entries int64, err error) {
	t := table{w: a.stdout}
	for e, err := range executions(ctx, j) {
		if err != nil {
			return 0, 0, err
		}
		if !e.Last.Before(cut) {
			continue
		}
		if list {
			t.row(e)
		}
		n++
		entries += e.Entries
	}
	return n, entries, nil
}

// errDeclined is a deletion the user did not confirm.
var errDeclined = errors.New("not confirmed: nothing deleted")

// confirm asks question on standard error and reads the answer from
// standard input: yes only for "y" or "yes".
func (a *app) confirm(question string) (bool, error) {
	fmt.Fprint(a.stderr, question+" [y/N] ")
	answer, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && answer == "" {
		fmt.Fprintln(a.stderr)
		return false, errDeclined
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true, nil
	}
	return false, errDeclined
}

// isTerminal reports whether f is a terminal. A character device is not
// enough: /dev/null is one.
func isTerminal(f *os.File) bool {
	return f != nil && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
