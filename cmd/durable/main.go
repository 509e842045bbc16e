package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, its arguments and streams passed in; it returns
// the exit code.
func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr *os.File) int {
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if cmd == nil {
		cmd = root
	}
	var u *usageError
	if errors.As(err, &u) || !app.started {
		// cobra's own errors come before any command runs: flags,
		// arguments, unknown commands.
		fmt.Fprintf(stderr, "%s: %s (see %s --help)\n", cmd.CommandPath(), oneLine(err.Error()), cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), oneLine(err.Error()))
	return exitError
}

// app holds what the commands share: the streams, the global flags and
// whether a command started running.
type app struct {
	stdin          *os.File
	stdout, stderr io.Writer
	journal        string // --journal, or $DURABLE_JOURNAL
	table          string // --table (PostgreSQL)
	started        bool   // set once arguments and flags are valid and a command runs
}

// usageError is an error of the command line: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "durable",
		Short: "Inspect, delete and expire the executions a durable journal holds",
		Long: `durable reads and manages the journals that github.com/durable-go/durable
executions checkpoint into: it lists the executions, shows one as a tree of its
combinators, branches and steps, deletes one, and deletes those last written
before a time.

The journal is --journal sqlite:PATH or --journal postgres://USER@HOST/DB (also
postgresql://), or the environment variable DURABLE_JOURNAL.

Exit status: 0 on success, 1 on an error, 2 on bad usage. Errors are one line
on standard error.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.started = true
			if !cmd.Flags().Changed("journal") {
				a.journal = os.Getenv(journalEnv)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&a.journal, "journal", "",
		"the journal: sqlite:PATH or postgres://... (default $"+journalEnv+")")
	root.PersistentFlags().StringVar(&a.table, "table", "durable_journal",
		`PostgreSQL: the journal's table, "table" or "schema.table"`)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(a.lsCommand(), a.showCommand(), a.rmCommand(), a.gcCommand(), a.jsonHelpCommand())
	return root
}

// exactArgs wants one positional argument per name, failing with a usage
// error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) > len(names):
			return usagef("unexpected argument %q", args[len(names)])
		case len(args) < len(names):
			return usagef("missing argument %s", names[len(args)])
		}
		return nil
	}
}

// oneLine folds a multi-line message (cobra's suggestions, a driver's
// details) into one line.
func oneLine(s string) string {
	s = strings.Replace(s, "\n\nDid you mean this?\n", "; did you mean:\n", 1)
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " ")
}
