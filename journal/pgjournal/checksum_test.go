package pgjournal_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/pgjournal"
)

// checksumProgram runs a small journaled program; ran counts the steps run.
func checksumProgram(j journal.Journal, ran *int) error {
	ctx := durable.WithJournal(context.Background(), j, "exec")
	_, err := durable.FanOut(ctx, "f", []string{"alpha", "beta"}, func(_ context.Context, s string) (string, error) {
		*ran++
		return "value-of-" + s, nil
	}, durable.WithMaxConcurrency(1))
	if err != nil {
		return err
	}
	_, err = durable.Settle(ctx, "s", []durable.Step[int]{
		durable.NewStep("x", func(context.Context) (int, error) { *ran++; return 42, nil }),
		durable.NewStep("y", func(context.Context) (int, error) { *ran++; return 0, durable.Permanent(errors.New("no")) }),
	}, durable.WithMaxConcurrency(1))
	return err
}

// Single-bit flips of stored values and keys in the PostgreSQL rows: every
// one is an error matching durable.ErrCorrupt that names the key, and no
// committed work runs again.
func TestBitFlipsInTheRowsAreDetected(t *testing.T) {
	table := newTable(t)
	ident := pgx.Identifier{}
	for _, part := range []string{table[:len(table)-len(".durable_journal")], "durable_journal"} {
		ident = append(ident, part)
	}
	src := openJournal(t, table)
	ran := 0
	require.NoError(t, checksumProgram(src, &ran))
	type entry struct{ key, value []byte }
	var entries []entry
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT key, value FROM "+ident.Sanitize()+" ORDER BY key")
	require.NoError(t, err)
	for rows.Next() {
		var e entry
		require.NoError(t, rows.Scan(&e.key, &e.value))
		entries = append(entries, e)
	}
	require.NoError(t, rows.Err())
	r := rand.New(rand.NewPCG(3, 4))
	flips := 0
	for _, e := range entries {
		for range 3 {
			bit := r.IntN(8 * len(e.value))
			value := append([]byte(nil), e.value...)
			value[bit/8] ^= 1 << (bit % 8)
			_, err := conn.Exec(ctx, "UPDATE "+ident.Sanitize()+" SET value = $1 WHERE key = $2", value, e.key)
			require.NoError(t, err)
			ran := 0
			err = checksumProgram(src, &ran)
			require.ErrorIs(t, err, durable.ErrCorrupt, "value of %q, bit %d", e.key, bit)
			require.ErrorContains(t, err, strconv.Quote(string(e.key)))
			require.Zero(t, ran, "committed work ran again")
			_, err = conn.Exec(ctx, "UPDATE "+ident.Sanitize()+" SET value = $1 WHERE key = $2", e.value, e.key)
			require.NoError(t, err)
			flips++
		}
	}
	t.Logf("%d flips of %d rows, every one detected", flips, len(entries))
}

// Migrate refuses a role that may read the journal's table but not write it,
// rather than the first Put after a wave of branches ran.
func TestMigrateRefusesARoleThatCannotWrite(t *testing.T) {
	table := newTable(t)
	openJournal(t, table) // migrated by the owner
	role := "pgjournal_reader_" + strconv.FormatUint(rand.Uint64(), 16)
	schema := table[:len(table)-len(".durable_journal")]
	exec(t, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		exec(t, "DROP OWNED BY "+role)
		exec(t, "DROP ROLE "+role)
	})
	// It may use and create in the schema (the migrations' statements), and
	// read the table, not write it.
	exec(t, "GRANT USAGE, CREATE ON SCHEMA "+pgx.Identifier{schema}.Sanitize()+" TO "+role)
	exec(t, "GRANT SELECT ON ALL TABLES IN SCHEMA "+pgx.Identifier{schema}.Sanitize()+" TO "+role)
	cfg, err := pgx.ParseConfig(databaseURL(t))
	require.NoError(t, err)
	url := strings.Replace(databaseURL(t), cfg.User+"@", role+"@", 1)
	j, err := pgjournal.Open(context.Background(), url, pgjournal.WithTable(table))
	require.NoError(t, err)
	defer j.Close()
	err = j.Migrate(context.Background())
	require.ErrorContains(t, err, "may not insert")
}
