package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/durable-go/durable/inspect"
)

func (a *app) showCommand() *cobra.Command {
	var (
		asJSON bool
		depth  int
	)
	cmd := &cobra.Command{
		Use:   "show EXEC",
		Short: "Show an execution as a tree",
		Long: `show prints execution EXEC (its ID as given to durable.WithJournal) as a tree:
its combinators (kind, name, policy, start, decision), their branches (index,
name, status, how long each ran, when it finished, failed attempts, a preview
of its value or its error) and the steps run inside them, nested. Times are
offsets from the execution's start, printed on the first line. Entries that do
not decode are flagged CORRUPT, with the reason.

A status of NOT_JOURNALED is a branch with nothing journaled: it was running,
failed with a failure that is not final, or never started.

Colours are used when standard output is a terminal and NO_COLOR is not set.
With --json it writes the whole tree as one JSON document (see "durable help
json").`,
		Args: exactArgs("EXEC"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if cmd.Flags().Changed("depth") && depth < 0 {
				return usagef("--depth %d: want 0 or more", depth)
			}
			j, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer j.Close()
			root, err := inspect.Read(cmd.Context(), j, argv[0])
			if errors.Is(err, inspect.ErrNoExecution) {
				return fmt.Errorf("no such execution %q in the journal", argv[0])
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeTreeJSON(a.stdout, root, depth)
			}
			return writeTree(a.stdout, root, depth, colours(a.stdout))
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON")
	cmd.Flags().IntVar(&depth, "depth", -1, "show `N` levels below the execution (default: all)")
	return cmd
}
