package pgjournal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal/pgjournal"
)

// putAll runs one Put per key at once, so that group commit batches them, and
// checks that each returns want(key).
func putAll(t *testing.T, j *pgjournal.Journal, keys []string, value, want func(key string) string) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			got, err := j.Put(ctx, k, []byte(value(k)))
			if assert.NoError(t, err, k) {
				assert.Equal(t, want(k), string(got), k)
			}
		})
	}
	wg.Wait()
}

func keyRange(prefix string, from, to int) []string {
	keys := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		keys = append(keys, fmt.Sprintf("%s%06d", prefix, i))
	}
	return keys
}

func same(k string) string { return k }

// The INSERT's RETURNING names the keys it wrote, so a batch reads nothing
// back unless a key held a value already; then it reads back only those keys.
func TestReadBackOnlyForSkippedKeys(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			j := openJournal(t, newTable(t), m.opts...)

			putAll(t, j, keyRange("new/", 0, 200), same, same)
			require.Zero(t, pgjournal.ReadBacks(j), "nothing conflicted, so nothing is read back")

			got, err := j.Put(ctx, "new/000007", []byte("second"))
			require.NoError(t, err)
			require.Equal(t, "new/000007", string(got), "the first write wins")
			require.Equal(t, int64(1), pgjournal.ReadBacks(j))

			// Half the keys exist: those return the stored value, the others
			// their own, and no batch reads back more than once.
			before := pgjournal.ReadBacks(j)
			txns := pgjournal.Transactions(j)
			putAll(t, j, keyRange("new/", 100, 300),
				func(k string) string { return "again " + k },
				func(k string) string {
					if k < "new/000200" {
						return k
					}
					return "again " + k
				})
			readBacks := pgjournal.ReadBacks(j) - before
			require.Positive(t, readBacks)
			require.LessOrEqual(t, readBacks, pgjournal.Transactions(j)-txns)

			putAll(t, j, keyRange("more/", 0, 100), same, same)
			require.Equal(t, before+readBacks, pgjournal.ReadBacks(j))
		})
	}
}

// Put returns a slice of its own, not the caller's value, also when that
// value was inserted and so not read back.
func TestPutDoesNotReturnCallersSlice(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			j := openJournal(t, newTable(t), m.opts...)
			in := []byte("original")
			out, err := j.Put(ctx, "k", in)
			require.NoError(t, err)
			copy(in, "XXXXXXXX")
			require.Equal(t, "original", string(out))
		})
	}
}

// A large table does not slow batches down: a batch of new keys reads nothing
// back, the INSERT does not scan the table, and the read-back of skipped keys
// probes the primary key. It does so also when it first ran while the table
// was small and the table's statistics were taken then: the server gives a
// statement that a connection has prepared a generic plan after a few
// executions, costed for the table as it was, and keeps it while the table
// grows. For these statistics that plan scans the whole table.
func TestLargeTable(t *testing.T) {
	const rows = 50_000
	ctx := context.Background()
	table := newTable(t)
	j := openJournal(t, table)
	ident := pgx.Identifier(strings.Split(table, ".")).Sanitize()
	_, name, _ := strings.Cut(table, ".")
	fill := func(from, to int) {
		exec(t, `INSERT INTO `+ident+` (key, value)
			SELECT convert_to(format('old/%s', lpad(i::text, 6, '0')), 'UTF8'), convert_to('stored', 'UTF8')
			FROM generate_series($1::int, $2::int - 1) AS i`, from, to)
	}
	stored := func(k string) string {
		if strings.HasPrefix(k, "old/") {
			return "stored"
		}
		return k
	}
	// mixed returns n keys of the table, spread over its first total rows,
	// and n new ones.
	mixed := func(batch, n, total int) []string {
		var keys []string
		for i := range n {
			keys = append(keys, fmt.Sprintf("old/%06d", (batch*n+i)*7919%total))
		}
		return append(keys, keyRange(fmt.Sprintf("new/%d/%02d/", total, batch), 0, n)...)
	}

	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	insert, readBack := pgjournal.WriteSQL(j)
	runReadBack := func(keys []string) {
		t.Helper()
		args := make([][]byte, len(keys))
		for i, k := range keys {
			args[i] = []byte(k)
		}
		rows, err := conn.Query(ctx, readBack, pgjournal.ReadBackMode, args)
		require.NoError(t, err)
		n := 0
		for rows.Next() {
			n++
		}
		require.NoError(t, rows.Err())
		require.Equal(t, len(keys), n)
	}

	// A small table with statistics, and batches that conflict with it.
	fill(0, 300)
	exec(t, `ANALYZE `+ident)
	for batch := range 10 {
		putAll(t, j, mixed(batch, 20, 300), stored, stored)
		runReadBack(mixed(batch, 20, 300)[:20])
	}
	early := pgjournal.ReadBacks(j)
	require.GreaterOrEqual(t, early, int64(10))

	fill(300, rows)

	// Batches of new keys only: no read-back at all.
	putAll(t, j, keyRange("new/", 0, 2000), same, same)
	require.Equal(t, early, pgjournal.ReadBacks(j))

	// Batches that conflict with the large table.
	for batch := range 10 {
		putAll(t, j, mixed(batch, 20, rows), stored, stored)
		runReadBack(mixed(batch, 20, rows)[:20])
	}
	require.GreaterOrEqual(t, pgjournal.ReadBacks(j), early+10)

	// The read-back is not a statement the server keeps, whose plan it would
	// cache: it is planned for each execution, for the table as it is.
	var prepared int
	require.NoError(t, conn.QueryRow(ctx,
		`SELECT count(*) FROM pg_prepared_statements WHERE statement = $1`, readBack).Scan(&prepared))
	require.Zero(t, prepared)
	var plan []byte
	skipped := [][]byte{[]byte("old/000001"), []byte("old/025000"), []byte("old/049999")}
	require.NoError(t, conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+readBack,
		pgjournal.ReadBackMode, skipped).Scan(&plan))
	nodes := planNodes(t, plan)
	t.Logf("read-back: %v", nodes)
	requireNoScanOf(t, nodes, name)
	require.Contains(t, nodes, "Index Scan "+name+" using "+name+"_pkey")

	// The INSERT, even as a generic plan, reads the table only through the
	// primary key, to find conflicts, and so does its upsert of the
	// executions it wrote to.
	_, err = conn.Exec(ctx, `PREPARE ins (bytea[], bytea[]) AS `+insert, pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`, pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE ins (NULL, NULL)`,
		pgx.QueryExecModeSimpleProtocol).Scan(&plan))
	nodes = planNodes(t, plan)
	t.Logf("insert: %v", nodes)
	requireNoScanOf(t, nodes, name)
	requireNoScanOf(t, nodes, name+"_executions")
	require.Contains(t, nodes, "ModifyTable "+name)
	require.Contains(t, nodes, "ModifyTable "+name+"_executions")
}

// planNodes lists the nodes of a plan printed by EXPLAIN (FORMAT JSON) as
// "type relation using index", the last two where the node has them.
func planNodes(t *testing.T, explain []byte) []string {
	t.Helper()
	type node struct {
		Type     string `json:"Node Type"`
		Relation string `json:"Relation Name"`
		Index    string `json:"Index Name"`
		Plans    []node `json:"Plans"`
	}
	var out []struct{ Plan node }
	require.NoError(t, json.Unmarshal(explain, &out))
	require.Len(t, out, 1)
	var nodes []string
	var walk func(n node)
	walk = func(n node) {
		s := n.Type
		if n.Relation != "" {
			s += " " + n.Relation
		}
		if n.Index != "" {
			s += " using " + n.Index
		}
		nodes = append(nodes, s)
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(out[0].Plan)
	return nodes
}

// requireNoScanOf fails unless every node that reads relation goes through
// an index.
func requireNoScanOf(t *testing.T, nodes []string, relation string) {
	t.Helper()
	for _, n := range nodes {
		typ, rest, _ := strings.Cut(n, " "+relation)
		if rest == n || typ == n {
			continue
		}
		if typ == "ModifyTable" {
			continue
		}
		require.Contains(t, rest, " using ", "%q reads %s without an index", n, relation)
	}
}
