package peers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/pgjournal"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// durable runs the workload as one FanOut named "steps" over the items 0..n-1
// with WithMaxConcurrency(cap), in the execution c.id of a journal opened with
// its defaults: sqlitejournal (synchronous=FULL, group commit) or pgjournal
// (group commit, pgx's default pool). A rerun and a resume make the same call:
// durable restores every journaled branch and runs the rest.
func durableRun(open func(context.Context, childConfig) (journalCloser, error)) func(context.Context, childConfig) (childReport, error) {
	return func(ctx context.Context, c childConfig) (childReport, error) {
		j, err := open(ctx, c)
		if err != nil {
			return childReport{}, err
		}
		defer j.Close()
		items := make([]int, c.n)
		for i := range items {
			items[i] = i
		}
		stop, err := profileCall()
		if err != nil {
			return childReport{}, err
		}
		ready := time.Now()
		res, err := durable.FanOut(durable.WithJournal(ctx, j, c.id), "steps", items,
			func(_ context.Context, i int) (Result, error) { return runStep(i) },
			durable.WithMaxConcurrency(c.cap))
		done := time.Now()
		if err := stop(); err != nil {
			return childReport{}, err
		}
		if err != nil {
			return childReport{}, err
		}
		if err := check(res, c.n); err != nil {
			return childReport{}, err
		}
		return finish(ready, done), nil
	}
}

// journalCloser is a journal that can list its keys and be closed: both
// backends are.
type journalCloser interface {
	journal.Journal
	journal.Scanner
	Close() error
}

func openSQLiteJournal(_ context.Context, c childConfig) (journalCloser, error) {
	return sqlitejournal.Open(c.path)
}

// pgTable is the journal's table in the trial's schema.
func pgTable(schema string) string { return schema + ".journal" }

func openPGJournal(ctx context.Context, c childConfig) (journalCloser, error) {
	j, err := pgjournal.Open(ctx, withParam(c.url, "application_name="+c.app), pgjournal.WithTable(pgTable(c.schema)))
	if err != nil {
		return nil, err
	}
	if err := j.Migrate(ctx); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// durableStored lists the branches journaled in execution tr.id: the keys
// under "<id>/steps/" that name a branch by its index (the others, "!h" and
// "!d", hold the FanOut's header and decision).
func durableStored(ctx context.Context, j journal.Scanner, id string) (map[int]bool, error) {
	prefix := id + "/steps/"
	stored := map[int]bool{}
	err := j.Scan(ctx, prefix, func(key string, _ []byte) error {
		seg := strings.TrimPrefix(key, prefix)
		if strings.HasPrefix(seg, "!") {
			return nil
		}
		i, err := strconv.Atoi(seg)
		if err != nil {
			return fmt.Errorf("unexpected key %q", key)
		}
		stored[i] = true
		return nil
	})
	return stored, err
}

// withParam adds a query parameter to a PostgreSQL URL.
func withParam(url, param string) string {
	if strings.Contains(url, "?") {
		return url + "&" + param
	}
	return url + "?" + param
}
