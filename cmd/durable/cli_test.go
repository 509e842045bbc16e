package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal/pgjournal"
)

// The JSON documents, as doc.go describes them. They are decoded with
// unknown fields disallowed, so a field the documentation does not name
// fails the test.
type lsJSON struct {
	Version    int `json:"version"`
	Executions []struct {
		ID      string    `json:"id"`
		Key     string    `json:"key"`
		Entries int64     `json:"entries"`
		First   time.Time `json:"first"`
		Last    time.Time `json:"last"`
	} `json:"executions"`
}

type showJSON struct {
	Version   int   `json:"version"`
	Execution *node `json:"execution"`
}

type node struct {
	Kind       string     `json:"kind"`
	Name       string     `json:"name"`
	Key        string     `json:"key"`
	Index      *int       `json:"index"`
	Combinator string     `json:"combinator"`
	Policy     string     `json:"policy"`
	Start      *time.Time `json:"start"`
	Decision   *struct {
		Reason  string     `json:"reason"`
		Decided *time.Time `json:"decided"`
		Winner  string     `json:"winner"`
	} `json:"decision"`
	Status      string          `json:"status"`
	Finished    *time.Time      `json:"finished"`
	RanNS       int64           `json:"ran_ns"`
	Codec       string          `json:"codec"`
	Value       json.RawMessage `json:"value"`
	ValueBase64 []byte          `json:"value_base64"`
	Error       *errorJSON      `json:"error"`
	Attempts    []struct {
		Attempt  int        `json:"attempt"`
		Finished *time.Time `json:"finished"`
		RanNS    int64      `json:"ran_ns"`
		NextAt   *time.Time `json:"next_at"`
		Error    *errorJSON `json:"error"`
	} `json:"attempts"`
	Corrupt []struct {
		Key   string `json:"key"`
		Error string `json:"error"`
	} `json:"corrupt"`
	Children []*node `json:"children"`
	Omitted  int     `json:"omitted"`
}

type errorJSON struct {
	Type      string   `json:"type"`
	Message   string   `json:"message"`
	Sentinels []string `json:"sentinels"`
}

func decodeStrict(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "%s", s)
}

// child returns n's child named name.
func (n *node) child(t *testing.T, name string) *node {
	t.Helper()
	for _, ch := range n.Children {
		if ch.Name == name {
			return ch
		}
	}
	require.FailNow(t, "no child", "%s has no child %q", n.Key, name)
	return nil
}

func TestLs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		text := f.ok(t, "ls")
		f.golden(t, "ls.txt", text)

		var ls lsJSON
		decodeStrict(t, f.ok(t, "ls", "--json"), &ls)
		require.Equal(t, 1, ls.Version)
		require.Len(t, ls.Executions, 3)
		var ids, keys []string
		for _, e := range ls.Executions {
			ids, keys = append(ids, e.ID), append(keys, e.Key)
			require.Positive(t, e.Entries)
			require.False(t, e.First.IsZero())
			require.False(t, e.Last.Before(e.First))
			require.WithinDuration(t, time.Now(), e.Last, 10*time.Minute)
			require.Regexp(t, `(?m)^\s+`+strconv.FormatInt(e.Entries, 10)+`\s.*\s`+regexp.QuoteMeta(e.ID)+`$`, text)
		}
		require.Equal(t, []string{"damaged", demoID, nestedID}, ids) // in the order of the stored IDs
		require.Equal(t, []string{"damaged", demoID, "tenant%2F7%23nightly"}, keys)
	})
}

func TestShow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		f.golden(t, "show-demo.txt", f.ok(t, "show", demoID))
		f.golden(t, "show-nested.txt", f.ok(t, "show", nestedID))
		f.golden(t, "show-damaged.txt", f.ok(t, "show", damagedID))
		f.golden(t, "show-demo-depth1.txt", f.ok(t, "show", "--depth", "1", demoID))
		f.golden(t, "show-nested-depth0.txt", f.ok(t, "show", nestedID, "--depth=0"))
	})
}

func TestShowJSON(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		t.Run("demo", func(t *testing.T) {
			var doc showJSON
			decodeStrict(t, f.ok(t, "show", "--json", demoID), &doc)
			require.Equal(t, 1, doc.Version)
			root := doc.Execution
			require.Equal(t, "execution", root.Kind)
			require.Equal(t, demoID, root.Name)
			require.Len(t, root.Children, 2)
			load := root.child(t, "load-orders")
			require.Equal(t, "step", load.Kind)
			require.Equal(t, "SUCCEEDED", load.Status)
			var orders []struct{ ID string }
			require.NoError(t, json.Unmarshal(load.Value, &orders))
			require.Len(t, orders, 40)

			settle := root.child(t, "process-orders")
			require.Equal(t, "combinator", settle.Kind)
			require.Equal(t, "Settle", settle.Combinator)
			require.NotEmpty(t, settle.Policy)
			require.NotNil(t, settle.Start)
			require.Equal(t, "ALL_COMPLETED", settle.Decision.Reason)
			require.NotNil(t, settle.Decision.Decided)
			require.Regexp(t, `^order-\d\d$`, settle.Decision.Winner)
			require.Len(t, settle.Children, 40)
			statuses := map[string]int{}
			for i, b := range settle.Children {
				require.Equal(t, "branch", b.Kind)
				require.Equal(t, i, *b.Index)
				require.Equal(t, orders[i].ID, b.Name)
				statuses[b.Status]++
				require.NotNil(t, b.Finished)
				require.Positive(t, b.RanNS)
				charge := b.child(t, "charge")
				require.Equal(t, "step", charge.Kind)
				if b.Status == "FAILED" {
					require.Equal(t, "card ending 0002 declined", b.Error.Message)
					require.Equal(t, "FAILED", charge.Status)
					require.Len(t, b.Children, 1)
					continue
				}
				var r struct{ Charge struct{ Cents int } }
				require.NoError(t, json.Unmarshal(b.Value, &r))
				require.Positive(t, r.Charge.Cents)
				require.Equal(t, "SUCCEEDED", b.child(t, "reserve").Status)
			}
			require.Equal(t, map[string]int{"SUCCEEDED": 36, "FAILED": 4}, statuses)
		})

		t.Run("nested", func(t *testing.T) {
			var doc showJSON
			decodeStrict(t, f.ok(t, "show", "--json", nestedID), &doc)
			root := doc.Execution
			require.Equal(t, nestedID, root.Name)
			require.Equal(t, "tenant%2F7%23nightly", root.Key)
			nightly := root.child(t, "nightly")
			require.Equal(t, "Parallel", nightly.Combinator)
			require.Nil(t, nightly.Decision)

			reports := nightly.child(t, "reports")
			require.Equal(t, "SUCCEEDED", reports.Status)
			require.JSONEq(t, `"4600 rows from 2 regions"`, string(reports.Value))
			regions := reports.child(t, "regions")
			require.Equal(t, "Settle", regions.Combinator)
			require.Equal(t, "tenant%2F7%23nightly/nightly/reports/regions", regions.Key)
			require.Equal(t, "apac", regions.Decision.Winner)
			apac := regions.child(t, "apac")
			require.Equal(t, "FAILED", apac.Status)
			require.Equal(t, "apac: quota exceeded", apac.Error.Message)
			require.Len(t, apac.Error.Sentinels, 1)
			require.Equal(t, "SUCCEEDED", reports.child(t, "summarize").Status)

			resize := nightly.child(t, "thumbnails").child(t, "resize")
			require.Equal(t, "FanOut", resize.Combinator)
			for i, name := range []string{"0", "1", "2"} {
				b := resize.child(t, name)
				require.Equal(t, i, *b.Index)
				require.JSONEq(t, "700", string(b.Value))
			}

			flaky := nightly.child(t, "flaky")
			require.Equal(t, "SUCCEEDED", flaky.Status)
			require.Len(t, flaky.Attempts, 2)
			for i, a := range flaky.Attempts {
				require.Equal(t, i+1, a.Attempt)
				require.Contains(t, a.Error.Message, "connection reset")
				require.NotNil(t, a.NextAt)
			}

			extras := root.child(t, "extras")
			require.Equal(t, "Group", extras.Combinator)
			require.JSONEq(t, `{"dry":false}`, string(extras.child(t, "config").Value))
			require.Equal(t, "step", root.child(t, "publish").Kind)
		})

		t.Run("damaged", func(t *testing.T) {
			var doc showJSON
			decodeStrict(t, f.ok(t, "show", "--json", damagedID), &doc)
			work := doc.Execution.child(t, "work")
			for _, name := range []string{"a", "b", "c"} {
				require.Equal(t, "SUCCEEDED", work.child(t, name).Status)
			}
			copied := work.child(t, "b").Corrupt
			require.Len(t, copied, 1)
			require.Equal(t, "damaged/work/b/copy", copied[0].Key)
			garbage := work.child(t, "c").Corrupt
			require.Len(t, garbage, 1)
			require.Equal(t, "damaged/work/c/check", garbage[0].Key)
			require.NotEmpty(t, garbage[0].Error)

			later := doc.Execution.child(t, "later")
			require.Equal(t, "SUCCEEDED", later.child(t, "first").Status)
			require.Equal(t, "NOT_JOURNALED", later.child(t, "second").Status)
			require.Equal(t, "NOT_JOURNALED", later.child(t, "third").Status)
		})

		t.Run("depth", func(t *testing.T) {
			var doc showJSON
			decodeStrict(t, f.ok(t, "show", "--json", "--depth", "1", demoID), &doc)
			settle := doc.Execution.child(t, "process-orders")
			require.Empty(t, settle.Children)
			require.Equal(t, 40+36*2+4, settle.Omitted) // 40 orders, each with a charge and, unless declined, a reserve
			require.Zero(t, doc.Execution.Omitted)
		})
	})
}

func TestRm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		msg := f.fail(t, 2, nil, "rm", nestedID)
		require.Contains(t, msg, "--yes")
		require.Contains(t, f.ok(t, "ls"), nestedID, "rm without --yes deleted")

		msg = f.fail(t, 1, nil, "rm", "--yes", "no-such-job")
		require.Contains(t, msg, `no such execution "no-such-job"`)

		out := f.ok(t, "rm", "--yes", nestedID)
		require.Regexp(t, `^deleted execution tenant/7#nightly: \d+ entries\n$`, out)
		require.NotContains(t, f.ok(t, "ls"), nestedID)
		msg = f.fail(t, 1, nil, "show", nestedID)
		require.Contains(t, msg, "no such execution")
		require.Contains(t, f.ok(t, "ls"), demoID)
	})
}

func TestGc(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		require.Equal(t, "no execution was last written before <time>\n", normalize(f.ok(t, "gc", "--older-than", "24h", "--dry-run")))

		f.age(t, "damaged", 48*time.Hour)
		f.age(t, "tenant%2F7%23nightly", 30*time.Hour)
		f.golden(t, "gc-dry-run.txt", f.ok(t, "gc", "--older-than", "24h", "--dry-run"))
		require.Contains(t, f.ok(t, "ls"), damagedID, "--dry-run deleted")

		msg := f.fail(t, 2, nil, "gc", "--older-than", "24h")
		require.Contains(t, msg, "--yes")

		require.Equal(t, "deleted 2 executions, last written before <time>\n", normalize(f.ok(t, "gc", "--older-than", "24h", "--yes")))
		var ls lsJSON
		decodeStrict(t, f.ok(t, "ls", "--json"), &ls)
		require.Len(t, ls.Executions, 1)
		require.Equal(t, demoID, ls.Executions[0].ID)
	})
}

func TestUsage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ls"}, 2, "no journal: pass --journal"},
		{[]string{"show", "x"}, 2, "DURABLE_JOURNAL"},
		{[]string{"ls", "--journal", "mysql://db"}, 2, `--journal "mysql://db": want sqlite:PATH or postgres://`},
		{[]string{"ls", "--journal", "postgres://u:hunter2@db:5432/x?sslmode=bogus"}, 2, "not a PostgreSQL URL"},
		{[]string{"ls", "--journal", "sqlite:"}, 2, "the path is empty"},
		{[]string{"ls", "--journal", "sqlite:" + path}, 1, "the file does not exist"},
		{[]string{"ls", "--journal", "postgres://nobody@127.0.0.1:1/none?connect_timeout=5"}, 1, "connect"},
		{[]string{"show"}, 2, "missing argument EXEC"},
		{[]string{"show", "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"rm"}, 2, "missing argument EXEC"},
		{[]string{"gc"}, 2, "--older-than is required"},
		{[]string{"gc", "--older-than", "soon"}, 2, "invalid argument"},
		{[]string{"gc", "--older-than", "-1h", "--yes"}, 2, "want a positive duration"},
		{[]string{"show", "--depth", "-2", "x"}, 2, "--depth -2"},
		{[]string{"ls", "--colour"}, 2, "unknown flag: --colour"},
		{[]string{"sho"}, 2, `unknown command "sho" for "durable"; did you mean: show`},
	} {
		r := run(t, nil, nil, tc.args...)
		require.Equal(t, tc.code, r.code, "durable %s: %s", strings.Join(tc.args, " "), r.stderr)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, tc.want)
		require.NotContains(t, r.stderr, "hunter2")
		require.Empty(t, r.stdout)
	}
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "a missing journal was created")

	r := run(t, nil, nil)
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "Usage:")
}

func TestJournalFromEnvironment(t *testing.T) {
	f := newSQLite(t)
	r := run(t, []string{"DURABLE_JOURNAL=" + f.flags[1]}, nil, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, demoID)

	// The flag wins.
	r = run(t, []string{"DURABLE_JOURNAL=sqlite:/nonexistent/j.db"}, nil, append([]string{"show", damagedID}, f.flags...)...)
	require.Equal(t, 0, r.code, r.stderr)
}

func TestUnknownExecution(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		msg := f.fail(t, 1, nil, "show", "tenant/8")
		require.Equal(t, "durable show: no such execution \"tenant/8\" in the journal\n", msg)
		f.fail(t, 1, nil, "show", "--json", "ORDERS-2025-06-01")
	})
}

// A journal that a newer release migrated is refused, and left as it was.
func TestNewerSchema(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		f := newSQLite(t)
		path := strings.TrimPrefix(f.flags[1], "sqlite:")
		db := openSQLite(t, path)
		_, err := db.Exec("PRAGMA user_version = 99")
		require.NoError(t, err)
		before, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, args := range [][]string{{"ls"}, {"show", demoID}, {"rm", "--yes", demoID}, {"gc", "--older-than", "1ns", "--yes"}} {
			msg := f.fail(t, 1, nil, args...)
			require.Contains(t, msg, "schema version 99, newer than 2")
			require.Contains(t, msg, "install a newer durable")
		}
		after, err := os.ReadFile(path)
		require.NoError(t, err)
		require.True(t, bytes.Equal(before, after), "the file changed")
	})
	t.Run("postgres", func(t *testing.T) {
		f := newPostgres(t)
		url, table := f.flags[1], f.flags[3]
		pgExec(t, url, "INSERT INTO "+strings.TrimSuffix(table, "durable_journal")+"durable_journal_migrations (version) VALUES (99)")
		for _, args := range [][]string{{"ls"}, {"show", demoID}, {"rm", "--yes", demoID}} {
			msg := f.fail(t, 1, nil, args...)
			require.Contains(t, msg, "schema version 99, newer than 2")
		}
	})
}

// The schema that "durable help json" prints is the one doc.go documents.
func TestJSONSchemaDocumented(t *testing.T) {
	r := run(t, nil, nil, "help", "json")
	require.Equal(t, 0, r.code, r.stderr)
	src, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(src), "// # JSON output\n//\n")
	require.True(t, ok)
	section, _, _ = strings.Cut(section, "package main")
	var lines []string
	for _, line := range strings.Split(strings.TrimSuffix(section, "\n"), "\n") {
		line = strings.TrimPrefix(line, "//")
		lines = append(lines, strings.TrimPrefix(line, " "))
	}
	help, _, _ := strings.Cut(r.stdout, "\nUsage:")
	require.Equal(t, strings.TrimSpace(strings.Join(lines, "\n")), strings.TrimSpace(help))
}

// An SQLite file of the first release is migrated when it is opened, and
// then listed and shown; a PostgreSQL schema is never migrated.
func TestOlderSchema(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		b, err := os.ReadFile("../../journal/sqlitejournal/testdata/journal-v1.sqlite") // 17 entries of "order-7"
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "v1.db")
		require.NoError(t, os.WriteFile(path, b, 0o600))
		f := &fixture{name: "sqlite-v1", flags: []string{"--journal", "sqlite:" + path}}

		require.Regexp(t, `(?m)^\s+17\s.*\sorder-7$`, f.ok(t, "ls"))
		require.Contains(t, f.ok(t, "show", "order-7"), "execution order-7")
		var v int
		require.NoError(t, openSQLite(t, path).QueryRow("PRAGMA user_version").Scan(&v))
		require.Equal(t, 2, v)
	})
	t.Run("postgres", func(t *testing.T) {
		url := databaseURL(t)
		schema := fmt.Sprintf("durable_cmd_test_%016x", rand.Uint64())
		pgExec(t, url, "CREATE SCHEMA "+schema)
		t.Cleanup(func() { pgExec(t, url, "DROP SCHEMA "+schema+" CASCADE") })
		// Version 1: the table of entries alone, as the first release made it.
		pgExec(t, url, "CREATE TABLE "+schema+".durable_journal (key bytea PRIMARY KEY, value bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
		// A Journal writes to it as the first release did, without migrating.
		j, err := pgjournal.Open(context.Background(), url, pgjournal.WithTable(schema+".durable_journal"))
		require.NoError(t, err)
		runNested(t, j)
		require.NoError(t, j.Close())
		f := &fixture{name: "postgres-v1", flags: []string{"--journal", url, "--table", schema + ".durable_journal"}}

		require.Contains(t, f.ok(t, "show", nestedID), "execution "+nestedID)
		for _, args := range [][]string{{"ls"}, {"rm", "--yes", nestedID}, {"gc", "--older-than", "1h", "--dry-run"}} {
			msg := f.fail(t, 1, nil, args...)
			require.Contains(t, msg, "schema predates version 2")
			require.Contains(t, msg, "Migrate")
		}
		conn, err := pgx.Connect(context.Background(), url)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		var tables int
		require.NoError(t, conn.QueryRow(context.Background(),
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&tables))
		require.Equal(t, 1, tables, "durable migrated the schema")

		f = &fixture{name: "postgres-none", flags: []string{"--journal", url, "--table", schema + ".nothing"}}
		msg := f.fail(t, 1, nil, "show", nestedID)
		require.Contains(t, msg, "table "+schema+".nothing does not exist")
	})
}
